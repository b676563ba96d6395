"""The completion event downstream systems receive, derived from a finished history."""

from __future__ import annotations

from collections.abc import Callable

from schemas.events import DomainEvent, WorkflowCancelled, WorkflowCompleted, WorkflowFailed
from schemas.messages import CompletionEvent
from shared.domain.state import WorkflowState

__all__ = ["completion_for"]


def completion_for(
    state: WorkflowState,
    final: DomainEvent,
    event_id_of: Callable[[int], str | None] | None = None,
) -> CompletionEvent | None:
    """The completion message for a terminal event, or None for any other event.

    ``event_id_of`` maps a stream version to its event id: a re-run's completion names the
    ``ce_id`` of the one it supersedes (the relay publishes each completion under its terminal
    event's id).
    """
    manifest_version = state.manifest.manifest_version if state.manifest else 0
    superseded = state.finished_versions[-1] if state.finished_versions else None
    common = {
        "workflow_id": state.workflow_id,
        "goal": state.goal,
        "manifest_version": manifest_version,
        "last_version": state.version,
        "run": state.run,
        "supersedes": event_id_of(superseded) if event_id_of and superseded else None,
        "forked_from": state.forked_from,
    }
    match final:
        case WorkflowCompleted():
            return CompletionEvent(
                outcome="completed",
                report=final.report,
                citations=final.citations,
                revisions=final.revisions,
                finished_at=final.finished_at,
                **common,  # type: ignore[arg-type]  # typed fields of the same model
            )
        case WorkflowFailed() | WorkflowCancelled():
            return CompletionEvent(
                outcome="cancelled" if isinstance(final, WorkflowCancelled) else "failed",
                reason=final.reason,
                revisions=max(state.revision, 0),
                finished_at=final.finished_at,
                **common,  # type: ignore[arg-type]  # typed fields of the same model
            )
    return None
