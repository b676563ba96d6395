"""Human summaries of workflow events: the rows of `agentlog history` and the demo's timeline."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from schemas.events import (
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
    WorkflowStarted,
    upcast,
)
from shared.eventstore import RecordedEvent

__all__ = ["TimelineRow", "describe", "timeline"]


@dataclass(frozen=True)
class TimelineRow:
    """One line of a workflow's history."""

    position: int
    version: int
    type: str
    agent: str
    summary: str
    time: str

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return asdict(self)


def describe(event: DomainEvent) -> tuple[str, str]:
    """(agent, one-line summary) for an event."""
    match event:
        case WorkflowStarted():
            return "supervisor", f"goal: {_clip(event.goal)}"
        case TaskScheduled():
            return event.agent, f"{event.task_id} attempt {event.attempt} scheduled"
        case PassagesRetrieved():
            ids = ", ".join(p.source_id for p in event.passages[:3])
            return (
                "search",
                f"{len(event.passages)} passages ({ids}{'…' if len(event.passages) > 3 else ''})",
            )
        case DraftWritten():
            words = len(event.draft.split())
            return (
                "writer",
                f"revision {event.revision}: {words} words, {len(event.cited_source_ids)} sources",
            )
        case CritiqueIssued():
            first = f" — {_clip(event.feedback[0], 60)}" if event.feedback else ""
            return (
                "critic",
                f"revision {event.revision}: {event.verdict} (score {event.score:.2f}){first}",
            )
        case MemoryCompacted():
            size = f"{event.source_chars} → {len(event.manifest)} chars"
            return "summarizer", f"manifest v{event.manifest_version}: {size}"
        case TaskFailed():
            return (
                event.agent,
                f"{event.task_id} attempt {event.attempt} failed: {_clip(event.error, 60)}",
            )
        case TaskTimedOut():
            return event.agent, f"{event.task_id} attempt {event.attempt} timed out"
        case WorkflowCompleted():
            return (
                "supervisor",
                f"completed after {event.revisions} revision(s), {len(event.citations)} citations",
            )
        case WorkflowFailed():
            return "supervisor", f"failed: {_clip(event.reason)}"
        case WorkflowCancelled():
            return "supervisor", f"cancelled: {_clip(event.reason)}"
    return "supervisor", event.event_type()


def timeline(records: list[RecordedEvent]) -> list[TimelineRow]:
    """Rows for a stream's records, in order."""
    rows = []
    for record in records:
        agent, summary = describe(upcast(record.type, record.schema_version, record.data))
        rows.append(
            TimelineRow(
                record.position,
                record.version,
                record.type,
                agent,
                summary,
                record.recorded_at.isoformat(timespec="milliseconds"),
            )
        )
    return rows


def _clip(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
