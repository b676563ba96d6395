"""One-line summaries of workflow events: the rows of `agentlog history`, the demo's timeline
and the console's event list."""

from __future__ import annotations

from schemas.controls import BudgetGrant
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
    SchedulingPaused,
    SchedulingResumed,
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

__all__ = ["clip", "describe"]


def describe(event: DomainEvent) -> tuple[str, str]:
    """(agent, one-line summary) for an event."""
    match event:
        case WorkflowStarted():
            return "supervisor", f"goal: {clip(event.goal)}"
        case TaskScheduled():
            return event.agent, f"{event.task_id} attempt {event.attempt} scheduled"
        case PassagesRetrieved():
            ids = ", ".join(p.source_id for p in event.passages[:3])
            more = "…" if len(event.passages) > 3 else ""
            return "search", f"{len(event.passages)} passages ({ids}{more})"
        case DraftWritten():
            words = len(event.draft.split())
            return (
                "writer",
                f"revision {event.revision}: {words} words, {len(event.cited_source_ids)} sources",
            )
        case CritiqueIssued():
            first = f" — {clip(event.feedback[0], 60)}" if event.feedback else ""
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
                f"{event.task_id} attempt {event.attempt} failed: {clip(event.error, 60)}",
            )
        case TaskTimedOut():
            return event.agent, f"{event.task_id} attempt {event.attempt} timed out"
        case WorkflowCompleted():
            return (
                "supervisor",
                f"completed after {event.revisions} revision(s), {len(event.citations)} citations",
            )
        case WorkflowFailed():
            return "supervisor", f"failed: {clip(event.reason)}"
        case WorkflowCancelled():
            return "supervisor", f"cancelled: {clip(event.reason)}"
        case WorkflowRolledBack():
            return "supervisor", f"rolled back to version {event.to_version}: {clip(event.reason)}"
        case BudgetExhausted():
            spent = (
                f"{event.ledger.steps} steps, {event.ledger.tokens} tokens, ${event.ledger.usd:.4f}"
            )
            return "supervisor", f"{event.limit} budget exhausted before {event.step} ({spent})"
        case ApprovalRequested():
            options = "/".join(event.options)
            return (
                "supervisor",
                f"waits for a human ({event.kind}: {clip(event.summary, 60)}) [{options}]",
            )
        case ApprovalGranted():
            extra = f" option {event.option}" if event.option else ""
            added = _grant(event.budget)
            return "human", f"{event.approver} granted {event.request_id}{extra}{added}"
        case ApprovalDenied():
            return "human", f"{event.approver} denied {event.request_id}: {clip(event.reason, 60)}"
        case ApprovalRejected():
            who = event.approver or "unverified sender"
            return "human", f"rejected decision from {who}: {clip(event.reason, 60)}"
        case CycleDetected():
            return event.agent, f"cycle: the same answer to the same input {event.repeats} times"
        case Backtracked():
            dropped = len(event.dropped_refs)
            return event.agent, f"backtracked to strategy {event.strategy}, dropped {dropped} items"
        case EscalatedToHuman():
            return "supervisor", f"escalated: {clip(event.reason, 60)} [{'/'.join(event.options)}]"
        case TaskReassigned():
            return event.agent, f"{event.task_id} reassigned to the {event.profile} model"
        case SchedulingPaused():
            return "operator", f"scheduling paused: {clip(event.reason, 60)}"
        case SchedulingResumed():
            return "operator", "scheduling resumed"
        case WorkflowForked():
            changed = (
                f", constraints: {'; '.join(event.constraints) or 'none'}"
                if event.constraints is not None
                else ""
            )
            return (
                "supervisor",
                f"forked from {event.parent_workflow_id} at version {event.parent_version}"
                f" ({len(event.history)} events copied){changed}",
            )
    return "supervisor", event.event_type()


def _grant(grant: BudgetGrant | None) -> str:
    if grant is None:
        return ""
    parts = [
        f"+{grant.add_tokens} tokens" if grant.add_tokens else "",
        f"+${grant.add_usd:g}" if grant.add_usd else "",
        f"+{grant.add_steps} steps" if grant.add_steps else "",
        f"+{grant.add_seconds:g}s" if grant.add_seconds else "",
    ]
    return " (" + ", ".join(p for p in parts if p) + ")"


def clip(text: str, limit: int = 80) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
