"""What can make the supervisor decide: a goal, a worker's result, a cancel, or time passing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.events import WorkflowPolicy
from schemas.messages import CancelWorkflow, GoalSubmitted, TaskResult

__all__ = ["CancelRequested", "GoalReceived", "ResultReceived", "Tick", "Trigger"]


@dataclass(frozen=True)
class GoalReceived:
    """An upstream goal arrived; ``defaults`` is the operator's policy for new workflows."""

    goal: GoalSubmitted
    defaults: WorkflowPolicy
    now: datetime
    #: The verified signer of the goal (None for an unsigned goal, where allowed).
    principal: str | None = None


@dataclass(frozen=True)
class ResultReceived:
    """A worker replied to a task."""

    result: TaskResult
    now: datetime


@dataclass(frozen=True)
class CancelRequested:
    """An operator asked to stop the workflow."""

    cancel: CancelWorkflow
    now: datetime
    #: The verified signer: recorded as who cancelled, whatever the message claims.
    principal: str | None = None


@dataclass(frozen=True)
class Tick:
    """Time passed; deadlines may have expired."""

    now: datetime


Trigger = GoalReceived | ResultReceived | CancelRequested | Tick
