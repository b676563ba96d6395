"""What can make the supervisor decide: a goal, a worker's result, a cancel, time passing, a
rollback, or a fork. Each trigger has a ``kind``: the status machine's vocabulary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from schemas.controls import Budget
from schemas.events import ForkedEvent, WorkflowPolicy
from schemas.messages import (
    ApprovalDecision,
    CancelWorkflow,
    ForkWorkflow,
    GoalSubmitted,
    RollbackWorkflow,
    TaskResult,
)

__all__ = [
    "CancelRequested",
    "DecisionReceived",
    "ForkRequested",
    "GoalReceived",
    "ResultReceived",
    "ResumeRequested",
    "RollbackRequested",
    "Tick",
    "Trigger",
]


@dataclass(frozen=True)
class GoalReceived:
    """An upstream goal arrived; ``defaults`` is the operator's policy for new workflows."""

    kind: ClassVar[str] = "goal"
    goal: GoalSubmitted
    defaults: WorkflowPolicy
    now: datetime
    #: The verified signer of the goal (None for an unsigned goal, where allowed).
    principal: str | None = None
    #: The operator's maximum budget a goal may ask for.
    ceiling: Budget = field(default_factory=Budget)


@dataclass(frozen=True)
class ResultReceived:
    """A worker replied to a task."""

    kind: ClassVar[str] = "result"
    result: TaskResult
    now: datetime


@dataclass(frozen=True)
class CancelRequested:
    """An operator asked to stop the workflow."""

    kind: ClassVar[str] = "cancel"
    cancel: CancelWorkflow
    now: datetime
    #: The verified signer: recorded as who cancelled, whatever the message claims.
    principal: str | None = None


@dataclass(frozen=True)
class Tick:
    """Time passed; deadlines may have expired."""

    kind: ClassVar[str] = "tick"
    now: datetime


@dataclass(frozen=True)
class RollbackRequested:
    """An operator asked for the effective history to end at ``rollback.to_version`` again."""

    kind: ClassVar[str] = "rollback"
    rollback: RollbackWorkflow
    now: datetime
    principal: str | None = None


@dataclass(frozen=True)
class ForkRequested:
    """An operator asked for a new workflow from another's state; ``history`` is the parent's
    effective history up to the fork point (read by the supervisor, copied into the fork)."""

    kind: ClassVar[str] = "fork"
    fork: ForkWorkflow
    history: tuple[ForkedEvent, ...]
    now: datetime
    principal: str | None = None


@dataclass(frozen=True)
class DecisionReceived:
    """A human answered an approval request (grant or deny, an option, a budget to add)."""

    kind: ClassVar[str] = "approval"
    decision: ApprovalDecision
    now: datetime
    #: The verified signer: the approver recorded.
    principal: str | None = None


@dataclass(frozen=True)
class ResumeRequested:
    """Operator-wide scheduling was resumed: schedule the next step of a held workflow."""

    kind: ClassVar[str] = "resume"
    now: datetime


Trigger = (
    GoalReceived
    | ResultReceived
    | CancelRequested
    | Tick
    | RollbackRequested
    | ForkRequested
    | DecisionReceived
    | ResumeRequested
)
