"""What each console page shows, read from the event store through ``shared.readside``.

Thin arrangements of the read side's answers for templates; the queries themselves
(timeline, state at a version, status, budget, diff, pending approvals) live in
``shared.readside.queries`` and ``shared.control_commands``, shared with the CLI and the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.domain import FLEET_STREAM, STATUS_NEUTRAL_EVENTS, WorkflowStatus, status_after
from shared.eventstore import EventStore
from shared.readside.queries import TimelineRow, read_state, status_summary, timeline

__all__ = [
    "STATUSES",
    "Branch",
    "LedgerRow",
    "WorkflowPage",
    "list_changes",
    "workflow_page",
    "workflow_rows",
]

STATUSES = tuple(s.value for s in WorkflowStatus)
_SCANNED = 200


async def workflow_rows(
    store: EventStore, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Recently updated workflows with their status, newest first (``agentlog list``'s rows)."""
    rows: list[dict[str, Any]] = []
    for s in await store.list_streams(_SCANNED):
        if s.stream_id == FLEET_STREAM:
            continue  # the operator-wide switches, not a workflow
        state = (
            (await read_state(store, s.stream_id)).status
            if s.last_type in STATUS_NEUTRAL_EVENTS
            else status_after(s.last_type)
        )
        if status and state.value != status:
            continue
        rows.append(
            {
                "workflow_id": s.stream_id,
                "status": state.value,
                "version": s.version,
                "last_event": s.last_type,
                "updated_at": s.updated_at.isoformat(timespec="seconds"),
            }
        )
    return rows[:limit]


async def list_changes(store: EventStore) -> tuple[tuple[str, int], ...]:
    """A token that changes whenever any recent workflow records an event."""
    return tuple((s.stream_id, s.version) for s in await store.list_streams(_SCANNED))


@dataclass(frozen=True)
class Branch:
    """Events a rollback abandoned: still in the log, no longer in effect."""

    rows: list[TimelineRow]
    #: The rollback that abandoned them (None if the log does not show it yet).
    rollback: TimelineRow | None


@dataclass(frozen=True)
class LedgerRow:
    """One line of the budget ledger: a step's spending, or a human's grant."""

    version: int
    type: str
    agent: str
    tokens: int
    usd: float
    note: str
    abandoned: bool


@dataclass(frozen=True)
class WorkflowPage:
    """Everything the workflow page shows."""

    workflow_id: str
    summary: dict[str, Any]
    rows: list[TimelineRow]
    branches: list[Branch] = field(default_factory=list)
    ledger: list[LedgerRow] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        """Whether the workflow has any event."""
        return bool(self.rows)

    @property
    def rollback_targets(self) -> set[int]:
        """Versions a rollback or fork may name: effective, and not a workflow's end."""
        ends = {"WorkflowCompleted", "WorkflowFailed", "WorkflowCancelled"}
        return {r.version for r in self.rows if not r.abandoned and r.type not in ends}


async def workflow_page(store: EventStore, workflow_id: str) -> WorkflowPage:
    """The workflow's status, timeline, abandoned branches and budget ledger."""
    records = await store.read(workflow_id)
    state = await read_state(store, workflow_id) if records else None
    rows = timeline(records, full=True)
    return WorkflowPage(
        workflow_id=workflow_id,
        summary=status_summary(state) if state is not None else {},
        rows=rows,
        branches=_branches(rows),
        ledger=_ledger(rows),
    )


def _branches(rows: list[TimelineRow]) -> list[Branch]:
    """Runs of abandoned events, each with the first rollback recorded after it."""
    branches: list[Branch] = []
    current: list[TimelineRow] = []
    for row in rows:
        if row.abandoned:
            current.append(row)
        elif current and row.type == "WorkflowRolledBack":
            branches.append(Branch(current, row))
            current = []
    if current:
        branches.append(Branch(current, None))
    return branches


def _ledger(rows: list[TimelineRow]) -> list[LedgerRow]:
    ledger = []
    for row in rows:
        detail = row.detail
        if detail is None:
            continue
        provenance = detail.provenance
        grant = detail.data.get("budget") if row.type == "ApprovalGranted" else None
        if provenance:
            tokens = int(provenance.get("prompt_tokens", 0)) + int(
                provenance.get("completion_tokens", 0)
            )
            note = f"{provenance.get('provider', '')} {provenance.get('model', '')}".strip()
            ledger.append(
                LedgerRow(
                    row.version,
                    row.type,
                    row.agent,
                    tokens,
                    float(provenance.get("cost_usd", 0.0)),
                    note,
                    row.abandoned,
                )
            )
        elif isinstance(grant, dict):
            added = ", ".join(f"+{v} {k.removeprefix('add_')}" for k, v in grant.items() if v)
            ledger.append(LedgerRow(row.version, row.type, row.agent, 0, 0.0, added, row.abandoned))
    return ledger
