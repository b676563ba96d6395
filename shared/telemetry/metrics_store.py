"""``MetricsEventStore``: an interceptor around the event store port that counts what it sees.

The supervisor is the only writer of workflow streams, so the events it appends are the
workflow transitions: ``WorkflowStarted``/``WorkflowForked`` (started), ``WorkflowCompleted``,
``WorkflowFailed``, ``WorkflowCancelled`` and ``ApprovalRequested`` (pending approval). Counting
them here means no decision code knows about metrics, and an append that fails (a conflict, a
duplicate) counts nothing.

The relay lag comes from the same place: the highest position appended or read through this
store, minus each follower's checkpoint as it last loaded or saved it. With one supervisor that
is exact; with several, events another replica appended count once the relay has read them.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.events import (
    ApprovalRequested,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowForked,
    WorkflowStarted,
)
from shared.eventstore.forwarding import ForwardingEventStore
from shared.eventstore.port import EventStore, NewEvent, RecordedEvent, Tracking
from shared.telemetry.metrics import Metrics, StoreMetrics

__all__ = ["MetricsEventStore"]

_STARTED = frozenset({WorkflowStarted.event_type(), WorkflowForked.event_type()})
_COMPLETED = WorkflowCompleted.event_type()
_FAILED = WorkflowFailed.event_type()
_CANCELLED = WorkflowCancelled.event_type()
_APPROVAL_REQUESTED = ApprovalRequested.event_type()


class MetricsEventStore(ForwardingEventStore):
    """Delegates to ``inner``; counts the workflow transitions each successful append records."""

    def __init__(self, inner: EventStore, metrics: Metrics) -> None:
        super().__init__(inner)
        self._metrics: StoreMetrics = metrics.store

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        tracking: Tracking | None = None,
    ) -> list[RecordedEvent]:
        recorded = await self.inner.append(stream_id, events, expected_version, tracking=tracking)
        for event in recorded:
            self._count(event)
        self._saw(recorded)
        return recorded

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        records = await self.inner.read_all(after_position, limit)
        self._saw(records)
        return records

    async def load_checkpoint(self, name: str) -> int:
        position = await self.inner.load_checkpoint(name)
        self._metrics.checkpoints[name] = position
        return position

    async def save_checkpoint(self, name: str, position: int) -> None:
        await self.inner.save_checkpoint(name, position)
        # Positions only move forward; a stale save must not make the lag look smaller.
        self._metrics.checkpoints[name] = max(position, self._metrics.checkpoints.get(name, 0))

    def _saw(self, records: Sequence[RecordedEvent]) -> None:
        if records:
            self._metrics.head_position = max(
                self._metrics.head_position, max(r.position for r in records)
            )

    def _count(self, event: RecordedEvent) -> None:
        kind = event.type
        if kind in _STARTED:
            self._metrics.started.inc()
        elif kind == _COMPLETED:
            self._metrics.completed.inc()
        elif kind == _FAILED:
            self._metrics.failed.inc()
        elif kind == _CANCELLED:
            self._metrics.cancelled.inc()
        elif kind == _APPROVAL_REQUESTED:
            self._metrics.pending_approval.labels(str(event.data.get("kind", "unknown"))).inc()
