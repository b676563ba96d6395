"""The completion event downstream systems receive, derived from a finished history."""

from __future__ import annotations

from schemas.events import DomainEvent, WorkflowCancelled, WorkflowCompleted, WorkflowFailed
from schemas.messages import CompletionEvent
from shared.domain.state import WorkflowState

__all__ = ["completion_for"]


def completion_for(state: WorkflowState, final: DomainEvent) -> CompletionEvent | None:
    """The completion message for a terminal event, or None for any other event."""
    manifest_version = state.manifest.manifest_version if state.manifest else 0
    match final:
        case WorkflowCompleted():
            return CompletionEvent(
                workflow_id=state.workflow_id,
                outcome="completed",
                goal=state.goal,
                report=final.report,
                citations=final.citations,
                revisions=final.revisions,
                manifest_version=manifest_version,
                last_version=state.version,
                finished_at=final.finished_at,
            )
        case WorkflowFailed() | WorkflowCancelled():
            return CompletionEvent(
                workflow_id=state.workflow_id,
                outcome="cancelled" if isinstance(final, WorkflowCancelled) else "failed",
                goal=state.goal,
                reason=final.reason,
                revisions=max(state.revision, 0),
                manifest_version=manifest_version,
                last_version=state.version,
                finished_at=final.finished_at,
            )
    return None
