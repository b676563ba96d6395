"""The supervisor's decisions: given state and a trigger, the events to record next.

Flow: started → search → write → critique → (revise → critique)* → completed; the summarizer
compacts working memory before a write whenever it exceeds the policy's limit. A failed or
timed-out task is retried up to ``max_attempts``; then the workflow fails with the reason.
A draft is committed only once the critic approves it: when revisions run out first, the
workflow fails rather than ship an unapproved report.
"""

from __future__ import annotations

import copy
from datetime import datetime

from schemas.events import (
    CritiqueIssued,
    DomainEvent,
    DraftWritten,
    MemoryCompacted,
    PassagesRetrieved,
    TaskFailed,
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
    ForkRequested,
    GoalReceived,
    ResultReceived,
    RollbackRequested,
    Tick,
    Trigger,
)

__all__ = ["decide"]


class _Decision:
    """Collects events while applying them to a private copy, so later steps see earlier ones."""

    def __init__(self, state: WorkflowState) -> None:
        self.state = copy.deepcopy(state)
        self.events: list[DomainEvent] = []

    def emit(self, event: DomainEvent) -> None:
        self.state.apply(event)
        self.events.append(event)


def decide(state: WorkflowState, trigger: Trigger) -> list[DomainEvent]:
    """The events that follow from ``trigger``; empty when it changes nothing (e.g. a duplicate,
    or a trigger the workflow's status does not accept)."""
    if not accepts(state.status, trigger.kind):
        return []
    decision = _Decision(state)
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
        case Tick():
            _on_tick(decision, trigger.now)
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
            decision.emit(schedule_search(state, now))
        case PassagesRetrieved() as retrieved:
            if retrieved.passages:
                _next_write(decision, now)
            else:
                _fail(decision, now, "search found no passages for the goal")
        case DraftWritten():
            decision.emit(schedule_critique(state, now))
        case MemoryCompacted():
            decision.emit(schedule_write(state, now))
        case CritiqueIssued() as critique:
            _after_critique(decision, critique, now)
        case TaskFailed() | TaskTimedOut() as failed:
            decision.emit(reissue(state, state.tasks[failed.task_id], now))
        case other:
            # A terminal event is refused as a target by admission; anything else is a bug.
            raise ValueError(f"cannot resume after {other.event_type()}")


def _start(decision: _Decision, trigger: GoalReceived) -> None:
    if decision.state.status is not WorkflowStatus.NEW:
        return  # the same goal again: the workflow already exists
    goal = trigger.goal
    policy = trigger.defaults
    if goal.max_revisions is not None:
        policy = policy.model_copy(update={"max_revisions": goal.max_revisions})
    decision.emit(
        WorkflowStarted(
            goal=goal.goal,
            constraints=list(goal.constraints),
            requested_by=goal.requested_by,
            submitted_by=trigger.principal,
            policy=policy,
            started_at=trigger.now,
        )
    )
    decision.emit(schedule_search(decision.state, trigger.now))


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
            decision.emit(schedule_critique(decision.state, now))
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
            decision.emit(schedule_write(decision.state, now))


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
        decision.emit(schedule_summary(state, now))
    else:
        decision.emit(schedule_write(state, now))


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
    if retryable and task.attempt < decision.state.policy.max_attempts:
        decision.emit(reschedule(decision.state, task, now))
    else:
        _fail(
            decision,
            now,
            f"{task.agent} task {task.task_id} failed after attempt {task.attempt}: {error}",
        )


def _fail(decision: _Decision, now: datetime, reason: str) -> None:
    decision.emit(WorkflowFailed(reason=reason[:500], finished_at=now))
