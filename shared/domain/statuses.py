"""The status machine: which statuses a workflow has, and which triggers each one accepts.

Adding a status (the agent-controls issue adds PENDING_APPROVAL) is a change to this table and
to the fold that enters it; ``decide`` consults ``accepts`` and nothing else.
"""

from __future__ import annotations

from enum import StrEnum

from schemas.events import WorkflowCancelled, WorkflowCompleted, WorkflowFailed

__all__ = [
    "ACCEPTS",
    "FLEET_STREAM",
    "STATUS_NEUTRAL_EVENTS",
    "TERMINAL_EVENTS",
    "WorkflowStatus",
    "accepts",
    "status_after",
]

#: The stream of operator-wide switches (pause/resume scheduling): not a workflow.
FLEET_STREAM = "agentlog-fleet"
#: Events recorded in any status without changing it: the stream head alone cannot say the
#: status when one of these is last (read the stream instead).
STATUS_NEUTRAL_EVENTS = frozenset({"ApprovalRejected"})


class WorkflowStatus(StrEnum):
    """Where a workflow is in its life."""

    NEW = "new"
    RUNNING = "running"
    #: Waiting for a human: a budget grant, a gated step's approval, or an escalation.
    PENDING_APPROVAL = "pending_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """The run is over (a rollback can still start another)."""
        return self in (WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED)


#: Status → the trigger kinds it acts on (``Trigger.kind``); any other trigger changes nothing.
ACCEPTS: dict[WorkflowStatus, frozenset[str]] = {
    WorkflowStatus.NEW: frozenset({"goal", "fork"}),
    WorkflowStatus.RUNNING: frozenset(
        {"goal", "result", "cancel", "tick", "rollback", "approval", "resume"}
    ),
    # Waiting costs nothing: results are still recorded, but only a decision, the deadline
    # (a tick), a cancel or a rollback moves the workflow on.
    WorkflowStatus.PENDING_APPROVAL: frozenset(
        {"goal", "result", "cancel", "tick", "rollback", "approval"}
    ),
    WorkflowStatus.COMPLETED: frozenset({"goal", "rollback", "approval"}),
    WorkflowStatus.FAILED: frozenset({"goal", "rollback", "approval"}),
    WorkflowStatus.CANCELLED: frozenset({"goal", "rollback", "approval"}),
}


def accepts(status: WorkflowStatus, kind: str) -> bool:
    """Whether a workflow in ``status`` acts on a trigger of ``kind``."""
    return kind in ACCEPTS[status]


#: Event type → the status it ends a run in.
TERMINAL_EVENTS: dict[str, WorkflowStatus] = {
    WorkflowCompleted.event_type(): WorkflowStatus.COMPLETED,
    WorkflowFailed.event_type(): WorkflowStatus.FAILED,
    WorkflowCancelled.event_type(): WorkflowStatus.CANCELLED,
}


def status_after(last_event_type: str) -> WorkflowStatus:
    """A workflow's status known only from its last event's type (no replay needed); not
    meaningful after a ``STATUS_NEUTRAL_EVENTS`` event."""
    if last_event_type == "ApprovalRequested":
        return WorkflowStatus.PENDING_APPROVAL
    return TERMINAL_EVENTS.get(last_event_type, WorkflowStatus.RUNNING)
