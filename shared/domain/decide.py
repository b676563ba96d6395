"""The supervisor's decisions: given state and a trigger, the events to record next.

Flow: started → search → write → critique → (revise → critique)* → completed; the summarizer
compacts working memory before a write whenever it exceeds the policy's limit. A failed or
timed-out task is retried up to ``max_attempts``; then the workflow fails with the reason.
A draft is committed only once the critic approves it: when revisions run out first, the
workflow fails rather than ship an unapproved report.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from schemas.controls import AGENT_STEPS, BudgetGrant, StepKind
from schemas.events import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    Backtracked,
    BudgetExhausted,
    CritiqueIssued,
    CycleDetected,
    DomainEvent,
    DraftWritten,
    EscalatedToHuman,
    MemoryCompacted,
    PassagesRetrieved,
    TaskFailed,
    TaskReassigned,
    TaskScheduled,
    TaskTimedOut,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowForked,
    WorkflowRolledBack,
    WorkflowStarted,
)
from schemas.messages import (
    Citation,
    CritiqueResult,
    DraftResult,
    ManifestResult,
    SearchResult,
    TaskFailure,
    TaskResult,
)
from shared.agents.draft import cited_sources
from shared.domain.budget import effective_budget, exhausted_limit, ledger_at, policy_for
from shared.domain.cycles import CYCLE_LENGTH, find_cycle
from shared.domain.scheduling import (
    reissue,
    reschedule,
    schedule_critique,
    schedule_search,
    schedule_summary,
    schedule_write,
    writer_passages,
)
from shared.domain.state import TaskState, WorkflowState
from shared.domain.statuses import WorkflowStatus, accepts
from shared.domain.triggers import (
    CancelRequested,
    DecisionReceived,
    ForkRequested,
    GoalReceived,
    ResultReceived,
    ResumeRequested,
    RollbackRequested,
    Tick,
    Trigger,
)

__all__ = ["decide"]


class _Decision:
    """Collects events while applying them to a private copy, so later steps see earlier ones."""

    def __init__(self, state: WorkflowState, *, paused: bool = False) -> None:
        self.state = state.clone()
        self.events: list[DomainEvent] = []
        #: Operator-wide pause: steps are held (not scheduled) until scheduling resumes.
        self.paused = paused

    def emit(self, event: DomainEvent) -> None:
        self.state.apply(event)
        self.events.append(event)


def decide(state: WorkflowState, trigger: Trigger, *, paused: bool = False) -> list[DomainEvent]:
    """The events that follow from ``trigger``; empty when it changes nothing (e.g. a duplicate,
    or a trigger the workflow's status does not accept). ``paused``: the operator-wide
    kill-switch is on, so no step is scheduled (facts are still recorded)."""
    if not accepts(state.status, trigger.kind):
        return []
    decision = _Decision(state, paused=paused)
    match trigger:
        case GoalReceived():
            _start(decision, trigger)
        case ResultReceived():
            _on_result(decision, trigger.result, trigger.now)
        case CancelRequested():
            decision.emit(
                WorkflowCancelled(
                    reason=trigger.cancel.reason,
                    requested_by=trigger.principal,
                    finished_at=trigger.now,
                )
            )
        case Tick() if state.status is WorkflowStatus.PENDING_APPROVAL:
            _on_approval_deadline(decision, trigger.now)
        case Tick():
            _on_tick(decision, trigger.now)
        case DecisionReceived():
            _on_decision(decision, trigger)
        case ResumeRequested():
            if not state.open_tasks and not state.status.terminal:
                _resume(decision, trigger.now)
        case RollbackRequested():
            decision.emit(
                WorkflowRolledBack(
                    to_version=trigger.rollback.to_version,
                    reason=trigger.rollback.reason,
                    requested_by=trigger.principal,
                    rolled_back_at=trigger.now,
                )
            )
            _resume(decision, trigger.now)
        case ForkRequested():
            fork = trigger.fork
            decision.emit(
                WorkflowForked(
                    parent_workflow_id=fork.parent_workflow_id,
                    parent_version=fork.at_version,
                    history=list(trigger.history),
                    constraints=list(fork.constraints) if fork.constraints is not None else None,
                    max_revisions=fork.max_revisions,
                    prompts=dict(fork.prompts) if fork.prompts else None,
                    reason=fork.reason,
                    requested_by=trigger.principal,
                    forked_at=trigger.now,
                )
            )
            _resume(decision, trigger.now)
    return decision.events


def _resume(decision: _Decision, now: datetime) -> None:
    """Schedule the step that follows the effective history's last fact.

    After a rollback or a fork, everything recorded up to the target is reused (passages,
    drafts, critiques, the manifest); only what comes next runs. Tasks that were open at the
    target were closed as abandoned by the fold, so the step is scheduled as new work.
    """
    state = decision.state
    match state.last_fact:
        case WorkflowStarted() | None:
            _schedule(decision, schedule_search(state, now), now)
        case PassagesRetrieved() as retrieved:
            if retrieved.passages:
                _next_write(decision, now)
            else:
                _fail(decision, now, "search found no passages for the goal")
        case DraftWritten():
            _schedule(decision, schedule_critique(state, now), now)
        case MemoryCompacted():
            _schedule(decision, schedule_write(state, now), now)
        case CritiqueIssued() as critique:
            _after_critique(decision, critique, now)
        case TaskFailed() | TaskTimedOut() as failed:
            _schedule(decision, reissue(state, state.tasks[failed.task_id], now), now)
        case other:
            # A terminal event is refused as a target by admission; anything else is a bug.
            raise ValueError(f"cannot resume after {other.event_type()}")


def _start(decision: _Decision, trigger: GoalReceived) -> None:
    if decision.state.status is not WorkflowStatus.NEW:
        return  # the same goal again: the workflow already exists
    goal = trigger.goal
    decision.emit(
        WorkflowStarted(
            goal=goal.goal,
            constraints=list(goal.constraints),
            requested_by=goal.requested_by,
            submitted_by=trigger.principal,
            policy=policy_for(trigger.goal, trigger.defaults),
            started_at=trigger.now,
        )
    )
    _schedule(decision, schedule_search(decision.state, trigger.now), trigger.now)


def _awaited(state: WorkflowState, result: TaskResult) -> TaskState | None:
    """The open task this result answers, or None for stale attempts and strangers."""
    task = state.tasks.get(result.task_id)
    if task is None or not task.open or task.attempt != result.attempt:
        return None
    if task.agent != result.agent:
        return None
    return task


def _on_result(decision: _Decision, result: TaskResult, now: datetime) -> None:
    task = _awaited(decision.state, result)
    if task is None:
        return
    match result:
        case TaskFailure():
            decision.emit(
                TaskFailed(
                    task_id=task.task_id,
                    agent=result.agent,
                    attempt=result.attempt,
                    error=result.error,
                    retryable=result.retryable,
                    provenance=result.provenance,
                )
            )
            _retry_or_fail(decision, task, now, result.error, retryable=result.retryable)
        case SearchResult():
            decision.emit(
                PassagesRetrieved(
                    task_id=task.task_id, passages=result.passages, provenance=result.provenance
                )
            )
            if not result.passages:
                _fail(decision, now, "search found no passages for the goal")
                return
            _next_write(decision, now)
        case DraftResult():
            decision.emit(
                DraftWritten(
                    task_id=task.task_id,
                    revision=result.revision,
                    draft=result.draft,
                    cited_source_ids=result.cited_source_ids,
                    provenance=result.provenance,
                )
            )
            if not _broke_cycle(decision, "writer", now):
                _schedule(decision, schedule_critique(decision.state, now), now)
        case CritiqueResult():
            _on_critique(decision, task, result, now)
        case ManifestResult():
            decision.emit(
                MemoryCompacted(
                    task_id=task.task_id,
                    manifest_version=result.manifest_version,
                    manifest=result.manifest,
                    source_chars=result.source_chars,
                    covered_refs=result.covered_refs,
                    provenance=result.provenance,
                )
            )
            if not _broke_cycle(decision, "summarizer", now):
                _schedule(decision, schedule_write(decision.state, now), now)


def _on_critique(
    decision: _Decision, task: TaskState, result: CritiqueResult, now: datetime
) -> None:
    decision.emit(
        CritiqueIssued(
            task_id=task.task_id,
            revision=result.revision,
            verdict=result.verdict,
            score=result.score,
            checks=dict(result.checks),
            feedback=result.feedback,
            provenance=result.provenance,
        )
    )
    _after_critique(decision, decision.state.critiques[-1], now)


def _after_critique(decision: _Decision, critique: CritiqueIssued, now: datetime) -> None:
    """Commit an approved draft, revise, or fail when revisions ran out."""
    state = decision.state
    if critique.verdict == "approved":
        if "deliver" in state.policy.approval_steps and "deliver" not in state.approved_steps:
            draft = state.drafts[-1]
            summary = f"deliver the approved report ({len(draft.draft.split())} words): "
            _request(decision, "step", now, step="deliver", summary=summary + draft.draft[:300])
            return
        draft = state.drafts[-1]
        titles = {p.source_id: p.title for p in writer_passages(state)}
        # From the approved text itself, not the writer's own list: the report can cite
        # nothing the completion does not name, and name nothing that was not retrieved.
        cited = [s for s in cited_sources(draft.draft) if s in titles]
        decision.emit(
            WorkflowCompleted(
                report=draft.draft,
                citations=[Citation(source_id=s, title=titles[s]) for s in cited],
                revisions=draft.revision,
                finished_at=now,
            )
        )
    elif state.revision < state.policy.max_revisions:
        _next_write(decision, now)
    else:
        _fail(
            decision,
            now,
            f"critic did not approve after {state.revision} revision(s); "
            f"last feedback: {'; '.join(critique.feedback)[:300]}",
        )


def _next_write(decision: _Decision, now: datetime) -> None:
    """Write next, compacting memory first when it has outgrown the policy's limit."""
    state = decision.state
    if state.memory_chars > state.policy.memory_limit_chars:
        _schedule(decision, schedule_summary(state, now), now)
    else:
        _schedule(decision, schedule_write(state, now), now)


def _on_tick(decision: _Decision, now: datetime) -> None:
    for task in decision.state.open_tasks:
        if task.deadline > now:
            continue
        decision.emit(
            TaskTimedOut(
                task_id=task.task_id,
                agent=task.agent,
                attempt=task.attempt,
                deadline=task.deadline,
            )
        )
        _retry_or_fail(decision, task, now, "deadline passed", retryable=True)
        if decision.state.status.terminal:
            return


def _retry_or_fail(
    decision: _Decision, task: TaskState, now: datetime, error: str, *, retryable: bool
) -> None:
    """Retry; then reassign to the agent's fallback model; then escalate to a human.

    A failure the agent calls not retryable (a rejected credential, an invalid request) fails
    the workflow at once: neither another attempt nor a human's "retry" can change it.
    """
    state = decision.state
    reason = f"{task.agent} task {task.task_id} failed after attempt {task.attempt}: {error}"
    if not retryable:
        _fail(decision, now, reason)
    elif task.attempt < state.policy.max_attempts:
        _schedule(decision, reschedule(state, task, now), now)
    elif task.agent in state.policy.fallbacks and task.command.get("profile") != "fallback":
        decision.emit(TaskReassigned(task_id=task.task_id, agent=task.agent, profile="fallback"))
        fallback = reissue(decision.state, task, now)
        command = {**fallback.command, "profile": "fallback"}
        _schedule(decision, fallback.model_copy(update={"command": command}), now)
    else:
        options = ["retry", "skip", "abort"] if task.agent == "summarizer" else ["retry", "abort"]
        decision.emit(
            EscalatedToHuman(
                reason=reason[:500], agent=task.agent, task_id=task.task_id, options=options
            )
        )
        _request(decision, "escalation", now, summary=reason[:300], options=options)


def _fail(decision: _Decision, now: datetime, reason: str) -> None:
    decision.emit(WorkflowFailed(reason=reason[:500], finished_at=now))


# --- agent controls --------------------------------------------------------------------


def _schedule(decision: _Decision, scheduled: TaskScheduled, now: datetime) -> None:
    """Emit ``scheduled`` unless scheduling is paused, the budget would be passed, or its step
    kind waits for a human's approval; then the workflow waits instead (costing nothing)."""
    state = decision.state
    if decision.paused:
        return  # held; a ResumeRequested schedules the next step when the operator resumes
    step = AGENT_STEPS[scheduled.agent]
    limit = exhausted_limit(state, now)
    if limit is not None:
        budget = effective_budget(state)
        decision.emit(
            BudgetExhausted(limit=limit, ledger=ledger_at(state, now), budget=budget, step=step)
        )
        summary = f"the {step} step would pass the {limit} budget; add budget or deny"
        _request(decision, "budget", now, step=step, summary=summary, options=["grant", "deny"])
        return
    if step in state.policy.approval_steps and step not in state.approved_steps:
        _request(decision, "step", now, step=step, summary=f"run the {step} step")
        return
    decision.emit(scheduled)


def _request(
    decision: _Decision,
    kind: Literal["budget", "step", "escalation"],
    now: datetime,
    *,
    summary: str,
    step: StepKind | None = None,
    options: list[str] | None = None,
) -> None:
    state = decision.state
    decision.emit(
        ApprovalRequested(
            request_id=f"approval-v{state.version + 1}",
            kind=kind,
            step=step,
            summary=summary[:500],
            options=options or ["grant", "deny"],
            deadline=now + timedelta(seconds=state.policy.approval_timeout_s),
        )
    )


def _on_decision(decision: _Decision, trigger: DecisionReceived) -> None:
    state, answer, now = decision.state, trigger.decision, trigger.now
    approver = trigger.principal or "unknown"
    pending = state.pending
    if state.status is not WorkflowStatus.PENDING_APPROVAL or pending is None:
        decision.emit(
            ApprovalRejected(
                request_id=answer.request_id,
                approver=approver,
                reason=f"nothing waits for a decision: the workflow is {state.status.value}",
            )
        )
        return
    if answer.request_id is not None and answer.request_id != pending.request_id:
        decision.emit(
            ApprovalRejected(
                request_id=answer.request_id,
                approver=approver,
                reason=f"no pending request {answer.request_id}; {pending.request_id} waits",
            )
        )
        return
    if now > pending.deadline:
        decision.emit(
            ApprovalRejected(
                request_id=pending.request_id, approver=approver, reason="after the deadline"
            )
        )
        _fail(decision, now, f"no decision on {pending.request_id} before its deadline")
        return
    if pending.kind == "escalation" and answer.decision == "grant":
        option = answer.option or "retry"
        if option not in pending.options:
            decision.emit(
                ApprovalRejected(
                    request_id=pending.request_id,
                    approver=approver,
                    reason=f"option {option!r} is not one of {', '.join(pending.options)}",
                )
            )
            return
        decision.emit(
            ApprovalGranted(
                request_id=pending.request_id,
                approver=approver,
                option=option,
                comment=answer.comment,
            )
        )
        _on_escalation_option(decision, option, now, approver)
        return
    if answer.decision == "deny" or (pending.kind == "escalation" and answer.option == "abort"):
        reason = answer.comment or "denied"
        decision.emit(
            ApprovalDenied(request_id=pending.request_id, approver=approver, reason=reason)
        )
        _fail(decision, now, f"{pending.kind} request denied by {approver}: {reason}")
        return
    grant = BudgetGrant(
        add_steps=answer.add_steps,
        add_tokens=answer.add_tokens,
        add_usd=answer.add_usd,
        add_seconds=answer.add_seconds,
    )
    decision.emit(
        ApprovalGranted(
            request_id=pending.request_id,
            approver=approver,
            comment=answer.comment,
            budget=None if grant.empty else grant,
        )
    )
    _resume(decision, now)


def _on_escalation_option(decision: _Decision, option: str, now: datetime, approver: str) -> None:
    state = decision.state
    if option == "abort":
        _fail(decision, now, f"aborted by {approver} after an escalation")
    elif option == "skip":
        # Only offered for compaction: write from the memory as it is.
        _schedule(decision, schedule_write(state, now), now)
    elif state.last_fact is not None and isinstance(state.last_fact, DraftWritten):
        _backtrack(decision, "writer", now)  # a cycle: try yet another strategy
    else:
        _resume(decision, now)


def _on_approval_deadline(decision: _Decision, now: datetime) -> None:
    pending = decision.state.pending
    if pending is not None and now >= pending.deadline:
        reason = f"no decision on {pending.request_id} before its deadline ({pending.summary})"
        _fail(decision, now, reason)


def _broke_cycle(decision: _Decision, agent: str, now: datetime) -> bool:
    """After an agent's step: on a detected cycle, backtrack (first time) or escalate."""
    state = decision.state
    found = find_cycle(state.recent_steps.get(agent, []))
    if found is None:
        return False
    inputs, output = found
    decision.emit(
        CycleDetected(
            agent=agent,  # type: ignore[arg-type]  # a watched agent name
            input_fingerprint=inputs,
            output_fingerprint=output,
            repeats=CYCLE_LENGTH,
        )
    )
    if decision.state.cycles.get(agent, 0) > 1:
        options = ["retry", "abort"]
        decision.emit(
            EscalatedToHuman(
                reason=f"the {agent} repeated itself again after backtracking",
                agent=agent,  # type: ignore[arg-type]  # a watched agent name
                options=options,
            )
        )
        summary = f"the {agent} is stuck in a loop even with another strategy"
        _request(decision, "escalation", now, summary=summary, options=options)
        return True
    _backtrack(decision, agent, now)
    return True


def _backtrack(decision: _Decision, agent: str, now: datetime) -> None:
    state = decision.state
    # A writer's loop is its drafts and their critiques; a stuck compaction hides nothing (the
    # manifest it keeps producing is replaced by the next one anyway).
    loop = [d.revision for d in state.drafts[-CYCLE_LENGTH:]] if agent == "writer" else []
    dropped = [f"draft-{r}" for r in loop] + [f"critique-{r}" for r in loop]
    decision.emit(
        Backtracked(
            agent=agent,  # type: ignore[arg-type]  # a watched agent name
            dropped_refs=dropped,
            strategy=state.strategies.get(agent, 0) + 1,
        )
    )
    # Either loop ends in a write: the writer's with its next strategy, or, after a stuck
    # compaction, a write from the memory as it is.
    _schedule(decision, schedule_write(decision.state, now), now)
