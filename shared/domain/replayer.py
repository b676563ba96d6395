"""Drift check: run today's decision code over a recorded history and find the first event
where it would decide differently (Temporal's replayer, for agentlog).

Each recorded decision is a batch of events appended together (same ``decision_id`` in their
metadata). The batch's first event tells what triggered it (a goal, a result, a cancel, time
passing, a rollback, a fork): the replayer rebuilds that trigger from the recorded facts —
never calling an agent or a model, since results are recorded — feeds it to ``decide`` with
the state folded so far, and compares the events it returns with the ones recorded.

Histories recorded before decisions carried a ``decision_id`` are grouped by causation id,
and the decision time is taken from the batch's own timestamps (exact for every event type
agentlog records).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from schemas.events import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRejected,
    CritiqueIssued,
    DomainEvent,
    DraftWritten,
    MemoryCompacted,
    PassagesRetrieved,
    TaskFailed,
    TaskScheduled,
    TaskTimedOut,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowForked,
    WorkflowRolledBack,
    WorkflowStarted,
    upcast,
)
from schemas.messages import (
    ApprovalDecision,
    CancelWorkflow,
    CritiqueResult,
    DraftResult,
    ForkWorkflow,
    GoalSubmitted,
    ManifestResult,
    Provenance,
    RollbackWorkflow,
    SearchResult,
    TaskFailure,
)
from schemas.registry import model_for
from shared.domain.blobs import StreamValues
from shared.domain.decide import decide
from shared.domain.state import WorkflowState
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

__all__ = ["Drift", "Recorded", "find_drift"]


class Recorded(Protocol):
    """What the replayer needs of a stored event (``RecordedEvent`` and bundle lines fit)."""

    @property
    def version(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def schema_version(self) -> int: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def metadata(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Drift:
    """Where today's code departs from a recorded history."""

    workflow_id: str
    #: The first version whose recorded event today's code would not record.
    version: int
    recorded: list[str]
    decided: list[str]
    detail: str


def find_drift(workflow_id: str, records: Sequence[Recorded]) -> Drift | None:
    """The first decision today's code would make differently, or None when it agrees."""
    state = WorkflowState(workflow_id)
    previous_now: datetime | None = None
    # Commands are compared expanded: one recorded whole before references existed and today's
    # by reference are the same decision when they send the same command.
    texts = StreamValues()
    for record in records:
        texts.add(record.data)
    for batch in _decisions(records):
        events = [upcast(r.type, r.schema_version, r.data) for r in batch]
        now = _decided_at(batch[0].metadata, events, state) or previous_now
        recorded = batch[0].metadata.get("trigger")
        recorded = recorded if isinstance(recorded, Mapping) else {}
        kind, paused = recorded.get("kind"), bool(recorded.get("paused"))
        if kind == "refused":
            # A record the transport refused, noted where it aimed: not a decision to check.
            for record, event in zip(batch, events, strict=True):
                state.apply(event, record.version)
            continue
        trigger = _trigger(workflow_id, state, events[0], now, kind)
        if trigger is None:
            return _drift(
                workflow_id, batch, events, [], "no trigger explains this decision", texts
            )
        decided = decide(state, trigger, paused=paused)
        if [_canonical(e, texts) for e in decided] != [_canonical(e, texts) for e in events]:
            return _drift(
                workflow_id, batch, events, decided, "today's code decides otherwise", texts
            )
        for record, event in zip(batch, events, strict=True):
            state.apply(event, record.version)
        previous_now = now
    return None


def _decisions(records: Sequence[Recorded]) -> list[list[Recorded]]:
    batches: list[list[Recorded]] = []
    previous: object = object()
    for record in records:
        key = record.metadata.get("decision_id") or (
            "causation",
            record.metadata.get("causation_id"),
            record.metadata.get("trigger", {}) and str(record.metadata.get("trigger")),
        )
        if batches and key == previous:
            batches[-1].append(record)
        else:
            batches.append([record])
        previous = key
    return batches


def _decided_at(
    metadata: Mapping[str, Any], events: list[DomainEvent], state: WorkflowState
) -> datetime | None:
    trigger = metadata.get("trigger") or {}
    if isinstance(trigger, Mapping) and trigger.get("now"):
        return datetime.fromisoformat(str(trigger["now"]))
    policy = state.policy
    for event in events:
        match event:
            case WorkflowStarted():
                return event.started_at
            case WorkflowForked():
                return event.forked_at
            case WorkflowRolledBack():
                return event.rolled_back_at
            case TaskScheduled():
                return event.deadline - timedelta(seconds=policy.task_timeout_s)
            case WorkflowCompleted() | WorkflowFailed() | WorkflowCancelled():
                return event.finished_at
    return None


def _trigger(
    workflow_id: str,
    state: WorkflowState,
    first: DomainEvent,
    now: datetime | None,
    kind: str | None = None,
) -> Trigger | None:
    if now is None:
        return None
    if kind == "resume":
        return ResumeRequested(now)
    task_id = str(getattr(first, "task_id", "none"))
    task = state.tasks.get(task_id)
    attempt = task.attempt if task is not None else 1
    match first:
        case WorkflowStarted():
            goal = GoalSubmitted(
                workflow_id=workflow_id,
                goal=first.goal,
                constraints=first.constraints,
                requested_by=first.requested_by,
            )
            return GoalReceived(goal, first.policy, now, first.submitted_by)
        case PassagesRetrieved():
            return ResultReceived(
                SearchResult(
                    workflow_id=workflow_id,
                    task_id=task_id,
                    attempt=attempt,
                    provenance=first.provenance,
                    passages=first.passages,
                ),
                now,
            )
        case DraftWritten():
            return ResultReceived(
                DraftResult(
                    workflow_id=workflow_id,
                    task_id=task_id,
                    attempt=attempt,
                    provenance=first.provenance,
                    draft=first.draft,
                    cited_source_ids=first.cited_source_ids,
                    revision=first.revision,
                ),
                now,
            )
        case CritiqueIssued():
            return ResultReceived(
                CritiqueResult(
                    workflow_id=workflow_id,
                    task_id=task_id,
                    attempt=attempt,
                    provenance=first.provenance,
                    verdict=first.verdict,
                    score=first.score,
                    checks=first.checks,
                    feedback=first.feedback,
                    revision=first.revision,
                ),
                now,
            )
        case MemoryCompacted():
            return ResultReceived(
                ManifestResult(
                    workflow_id=workflow_id,
                    task_id=task_id,
                    attempt=attempt,
                    provenance=first.provenance,
                    manifest=first.manifest,
                    manifest_version=first.manifest_version,
                    source_chars=first.source_chars,
                    covered_refs=first.covered_refs,
                ),
                now,
            )
        case TaskFailed():
            return ResultReceived(
                TaskFailure(
                    workflow_id=workflow_id,
                    task_id=task_id,
                    attempt=first.attempt,
                    agent=first.agent,
                    provenance=first.provenance or _no_provenance(),
                    error=first.error,
                    retryable=first.retryable,
                ),
                now,
            )
        case TaskTimedOut():
            return Tick(now)
        case WorkflowCancelled():
            cancel = CancelWorkflow(workflow_id=workflow_id, reason=first.reason)
            return CancelRequested(cancel, now, first.requested_by)
        case WorkflowRolledBack():
            rollback = RollbackWorkflow(
                workflow_id=workflow_id, to_version=first.to_version, reason=first.reason
            )
            return RollbackRequested(rollback, now, first.requested_by)
        case ApprovalGranted() | ApprovalDenied() | ApprovalRejected():
            return DecisionReceived(_decision(workflow_id, first), now, first.approver)
        case WorkflowForked():
            fork = ForkWorkflow(
                workflow_id=workflow_id,
                parent_workflow_id=first.parent_workflow_id,
                at_version=first.parent_version,
                constraints=first.constraints,
                max_revisions=first.max_revisions,
                reason=first.reason,
                prompts=first.prompts,
            )
            return ForkRequested(fork, tuple(first.history), now, first.requested_by)
    return None


def _no_provenance() -> Provenance:
    return Provenance(provider="none", model="none", strategy_version="failure")


def _decision(
    workflow_id: str, event: ApprovalGranted | ApprovalDenied | ApprovalRejected
) -> ApprovalDecision:
    match event:
        case ApprovalGranted():
            grant = event.budget
            return ApprovalDecision(
                workflow_id=workflow_id,
                request_id=event.request_id,
                decision="grant",
                option=event.option,
                comment=event.comment,
                add_steps=grant.add_steps if grant else 0,
                add_tokens=grant.add_tokens if grant else 0,
                add_usd=grant.add_usd if grant else 0.0,
                add_seconds=grant.add_seconds if grant else 0.0,
            )
        case ApprovalDenied():
            return ApprovalDecision(
                workflow_id=workflow_id,
                request_id=event.request_id,
                decision="deny",
                comment=event.reason,
            )
    return ApprovalDecision(workflow_id=workflow_id, request_id=event.request_id, decision="grant")


def _canonical(event: DomainEvent, texts: StreamValues) -> tuple[str, dict[str, Any]]:
    data = event.model_dump(mode="json")
    if isinstance(event, TaskScheduled):
        # Compare commands as their model reads them: a field added with a default since the
        # history was recorded means the same command, not a different decision.
        sent = texts.expand(event.command)
        command = model_for(event.command_type).model_validate(sent, strict=False)
        data["command"] = command.model_dump(mode="json")
    return event.event_type(), data


def _drift(
    workflow_id: str,
    batch: Sequence[Recorded],
    recorded: list[DomainEvent],
    decided: list[DomainEvent],
    reason: str,
    texts: StreamValues,
) -> Drift:
    first_diff = 0
    for first_diff, (a, b) in enumerate(zip(recorded, decided, strict=False)):  # noqa: B007
        if _canonical(a, texts) != _canonical(b, texts):
            break
    else:
        first_diff = min(len(recorded), len(decided))
    index = min(first_diff, len(batch) - 1)
    return Drift(
        workflow_id=workflow_id,
        version=batch[index].version,
        recorded=[_summary(e) for e in recorded],
        decided=[_summary(e) for e in decided],
        detail=f"{reason} at version {batch[index].version}",
    )


def _summary(event: DomainEvent) -> str:
    match event:
        case TaskScheduled():
            return f"TaskScheduled {event.task_id} ({event.agent}, attempt {event.attempt})"
        case CritiqueIssued():
            return f"CritiqueIssued {event.verdict} ({event.score:.2f})"
        case WorkflowFailed():
            return f"WorkflowFailed: {event.reason[:80]}"
    return event.event_type()
