"""The workflow's domain events: what the supervisor records in each workflow's stream.

Read top to bottom, this list is what the system does. The stored ``type`` is the class name
and ``schema_version`` is ``VERSION``; an event whose stored version is older is upcast by
``upcast_vN_vN+1`` static methods (the eventsourcing library's convention, see docs/design.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from schemas.base import Identifier, LongText, Message, ShortText
from schemas.controls import Budget, BudgetGrant, Ledger, StepKind
from schemas.messages import AgentName, Citation, Passage, Provenance

__all__ = [
    "DOMAIN_EVENTS",
    "ApprovalDenied",
    "ApprovalGranted",
    "ApprovalRejected",
    "ApprovalRequested",
    "Backtracked",
    "BudgetExhausted",
    "CritiqueIssued",
    "CycleDetected",
    "DomainEvent",
    "DraftWritten",
    "EscalatedToHuman",
    "ForkedEvent",
    "MemoryCompacted",
    "PassagesRetrieved",
    "RecordedEventMessage",
    "SchedulingPaused",
    "SchedulingResumed",
    "TaskFailed",
    "TaskReassigned",
    "TaskScheduled",
    "TaskTimedOut",
    "WorkflowCancelled",
    "WorkflowCompleted",
    "WorkflowFailed",
    "WorkflowForked",
    "WorkflowPolicy",
    "WorkflowRolledBack",
    "WorkflowStarted",
    "upcast",
]


class DomainEvent(Message):
    """Base of every workflow event; the stream id (workflow id) is not repeated inside."""

    model_config = Message.model_config | {"extra": "ignore"}

    @classmethod
    def event_type(cls) -> str:
        """The stored type name."""
        return cls.__name__


class WorkflowPolicy(Message):
    """The limits a workflow runs under, fixed when it starts so replay sees the same ones."""

    max_revisions: int = Field(default=3, ge=0, le=10)
    max_attempts: int = Field(default=3, ge=1, le=10)
    task_timeout_s: float = Field(default=30.0, gt=0)
    memory_limit_chars: int = Field(default=6000, ge=500)
    manifest_budget_chars: int = Field(default=2400, ge=200)
    search_limit: int = Field(default=8, ge=1, le=50)
    budget: Budget = Field(default_factory=Budget)
    #: Step kinds that wait for a human's approval before they run.
    approval_steps: list[StepKind] = Field(default_factory=list)
    #: How long a request for approval waits before the workflow fails.
    approval_timeout_s: float = Field(default=3600.0, gt=0)
    #: Prompt versions pinned at start (agent → semantic version).
    prompts: dict[ShortText, ShortText] = Field(default_factory=dict)
    #: Agents that have a fallback model to reassign a failing task to.
    fallbacks: list[AgentName] = Field(default_factory=list)


class WorkflowStarted(DomainEvent):
    """A goal was accepted and a workflow began."""

    goal: str
    constraints: list[ShortText] = Field(default_factory=list)
    #: The goal's own claim of on whose behalf it was sent (not verified).
    requested_by: ShortText | None = None
    #: The verified signer of the goal message (None: an unsigned goal, where allowed).
    submitted_by: ShortText | None = None
    policy: WorkflowPolicy = Field(default_factory=WorkflowPolicy)
    started_at: datetime


class TaskScheduled(DomainEvent):
    """A task was assigned to an agent; ``command`` is the message the relay publishes, with each
    long text an earlier event of the workflow records held as ``{"$blob": "<sha256 hex>"}``
    (``shared.domain.blobs``: the relay sends it expanded)."""

    task_id: Identifier
    agent: AgentName
    attempt: int = Field(ge=1)
    deadline: datetime
    command_type: ShortText
    command: dict[str, Any]


class PassagesRetrieved(DomainEvent):
    """The search agent returned ranked passages."""

    task_id: Identifier
    passages: list[Passage]
    provenance: Provenance


class DraftWritten(DomainEvent):
    """The writer produced a draft (revision 0 is the first)."""

    task_id: Identifier
    revision: int = Field(ge=0)
    draft: LongText
    cited_source_ids: list[ShortText] = Field(default_factory=list)
    provenance: Provenance


class CritiqueIssued(DomainEvent):
    """The critic judged a draft."""

    task_id: Identifier
    revision: int = Field(ge=0)
    verdict: Literal["approved", "revise"]
    score: float
    checks: dict[str, bool] = Field(default_factory=dict)
    feedback: list[ShortText] = Field(default_factory=list)
    provenance: Provenance


class MemoryCompacted(DomainEvent):
    """The summarizer produced a new version of the project manifest."""

    task_id: Identifier
    manifest_version: int = Field(ge=1)
    manifest: LongText
    source_chars: int = Field(ge=0)
    covered_refs: list[ShortText] = Field(default_factory=list)
    provenance: Provenance


class TaskFailed(DomainEvent):
    """An agent reported that a task attempt failed."""

    task_id: Identifier
    agent: AgentName
    attempt: int = Field(ge=1)
    error: ShortText
    retryable: bool = True
    #: What the failed attempt spent (failed attempts count against the budget too).
    provenance: Provenance | None = None


class TaskTimedOut(DomainEvent):
    """A task attempt passed its deadline without a result."""

    task_id: Identifier
    agent: AgentName
    attempt: int = Field(ge=1)
    deadline: datetime


class WorkflowCompleted(DomainEvent):
    """The critic approved a draft (or revisions ran out) and the report was committed."""

    report: LongText
    citations: list[Citation] = Field(default_factory=list)
    revisions: int = Field(ge=0)
    approved: bool = True
    finished_at: datetime


class WorkflowFailed(DomainEvent):
    """The workflow stopped without a report."""

    reason: ShortText
    finished_at: datetime


class WorkflowCancelled(DomainEvent):
    """An operator pulled the kill-switch."""

    reason: ShortText
    #: The verified signer of the cancel (before signing existed: the sender's claim).
    requested_by: ShortText | None = None
    finished_at: datetime


class WorkflowRolledBack(DomainEvent):
    """An operator rolled the workflow back: from here on, the effective history is events
    ``1..to_version`` (as they were effective then) followed by this event and what comes after.

    Nothing is deleted: the events between ``to_version`` and this one stay in the log as an
    abandoned branch. Work recorded up to ``to_version`` is reused; the next step after it is
    scheduled afresh.
    """

    to_version: int = Field(ge=1)
    reason: ShortText
    #: The verified signer of the request.
    requested_by: ShortText | None = None
    rolled_back_at: datetime


class ForkedEvent(Message):
    """One event of the parent's effective history, copied into a fork."""

    model_config = Message.model_config | {"strict": False}

    #: The parent's stream version; 0 for an event its own parent's fork copied.
    version: int = Field(ge=0)
    type: ShortText
    schema_version: int = Field(ge=1)
    data: dict[str, Any]


class WorkflowForked(DomainEvent):
    """A new workflow began from another one's state at ``parent_version``.

    ``history`` is a copy of the parent's effective history up to that version, so the fork is
    self-contained: readable, replayable and verifiable without its parent.
    """

    parent_workflow_id: Identifier
    parent_version: int = Field(ge=1)
    history: list[ForkedEvent]
    #: Replaces the parent's constraints when set.
    constraints: list[ShortText] | None = None
    max_revisions: int | None = Field(default=None, ge=0, le=10)
    prompts: dict[ShortText, ShortText] | None = None
    reason: ShortText = ""
    requested_by: ShortText | None = None
    forked_at: datetime


class BudgetExhausted(DomainEvent):
    """The next step would pass a budget limit, so it was not scheduled."""

    limit: Literal["steps", "tokens", "usd", "seconds"]
    ledger: Ledger
    budget: Budget
    step: StepKind


class ApprovalRequested(DomainEvent):
    """The workflow waits for a human (PENDING_APPROVAL) until a decision or the deadline."""

    request_id: Identifier
    kind: Literal["budget", "step", "escalation"]
    step: StepKind | None = None
    summary: ShortText
    options: list[ShortText] = Field(default_factory=list)
    deadline: datetime


class ApprovalGranted(DomainEvent):
    """A verified approver granted the pending request."""

    request_id: Identifier
    approver: ShortText
    option: ShortText | None = None
    comment: ShortText = ""
    budget: BudgetGrant | None = None


class ApprovalDenied(DomainEvent):
    """A verified approver denied the pending request; the workflow fails with the reason."""

    request_id: Identifier
    approver: ShortText
    reason: ShortText


class ApprovalRejected(DomainEvent):
    """A decision that changed nothing: late, for no pending request, or unauthenticated."""

    request_id: ShortText | None = None
    approver: ShortText | None = None
    reason: ShortText


class CycleDetected(DomainEvent):
    """An agent produced the same output for the same input three times in a row."""

    agent: AgentName
    input_fingerprint: ShortText
    output_fingerprint: ShortText
    repeats: int = Field(ge=2)


class Backtracked(DomainEvent):
    """The loop's short-term memory is dropped and the agent must try another strategy."""

    agent: AgentName
    dropped_refs: list[ShortText] = Field(default_factory=list)
    strategy: int = Field(ge=0)


class EscalatedToHuman(DomainEvent):
    """Automatic recovery ran out; a human chooses among ``options``."""

    reason: ShortText
    agent: AgentName | None = None
    task_id: Identifier | None = None
    options: list[ShortText] = Field(default_factory=list)


class TaskReassigned(DomainEvent):
    """A task that failed all its attempts moves to the agent's fallback model."""

    task_id: Identifier
    agent: AgentName
    profile: ShortText


class SchedulingPaused(DomainEvent):
    """Operator-wide kill-switch: no workflow schedules a step until resumed."""

    reason: ShortText = ""
    requested_by: ShortText | None = None
    at: datetime


class SchedulingResumed(DomainEvent):
    """Scheduling runs again for every workflow."""

    reason: ShortText = ""
    requested_by: ShortText | None = None
    at: datetime


DOMAIN_EVENTS: dict[str, type[DomainEvent]] = {
    cls.event_type(): cls
    for cls in (
        WorkflowStarted,
        TaskScheduled,
        PassagesRetrieved,
        DraftWritten,
        CritiqueIssued,
        MemoryCompacted,
        TaskFailed,
        TaskTimedOut,
        WorkflowCompleted,
        WorkflowFailed,
        WorkflowCancelled,
        WorkflowRolledBack,
        WorkflowForked,
        BudgetExhausted,
        ApprovalRequested,
        ApprovalGranted,
        ApprovalDenied,
        ApprovalRejected,
        CycleDetected,
        Backtracked,
        EscalatedToHuman,
        TaskReassigned,
        SchedulingPaused,
        SchedulingResumed,
    )
}


def upcast(event_type: str, schema_version: int, data: dict[str, Any]) -> DomainEvent:
    """Rebuild a stored event as the current model, upcasting older schema versions.

    Mirrors eventsourcing's Mapper: apply ``upcast_v{n}_v{n+1}(data)`` until current.
    """
    try:
        cls = DOMAIN_EVENTS[event_type]
    except KeyError:
        raise ValueError(f"unknown domain event type {event_type!r}") from None
    state = dict(data)
    version = schema_version
    while version < cls.VERSION:
        getattr(cls, f"upcast_v{version}_v{version + 1}")(state)
        version += 1
    # Stored data is JSON: datetimes are ISO strings, so validate in JSON's (lax) mode.
    return cls.model_validate(state, strict=False)


class RecordedEventMessage(Message):
    """A stored workflow event as published on ``agentlog.workflow-events`` for auditors."""

    TYPE: ClassVar[str] = "agentlog.workflow.event.v1"

    workflow_id: Identifier
    position: int = Field(ge=1)
    #: The parent's stream version; 0 for an event its own parent's fork copied.
    version: int = Field(ge=0)
    type: ShortText
    schema_version: int = Field(ge=1)
    data: dict[str, Any]
    metadata: dict[str, Any] = Field(default_factory=dict)
    recorded_at: datetime
