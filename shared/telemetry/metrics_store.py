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
from shared.eventstore.port import EventStore, NewEvent, RecordedEvent, StreamSummary, Tracking
from shared.telemetry.metrics import Metrics, StoreMetrics

__all__ = ["MetricsEventStore"]

_STARTED = frozenset({WorkflowStarted.event_type(), WorkflowForked.event_type()})
_COMPLETED = WorkflowCompleted.event_type()
_FAILED = WorkflowFailed.event_type()
_CANCELLED = WorkflowCancelled.event_type()
_APPROVAL_REQUESTED = ApprovalRequested.event_type()


class MetricsEventStore(EventStore):
    """Delegates to ``inner``; counts the workflow transitions each successful append records."""

    def __init__(self, inner: EventStore, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics: StoreMetrics = metrics.store

    def __repr__(self) -> str:
        return f"MetricsEventStore({self._inner!r})"

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        tracking: Tracking | None = None,
    ) -> list[RecordedEvent]:
        recorded = await self._inner.append(stream_id, events, expected_version, tracking=tracking)
        for event in recorded:
            self._count(event)
        self._saw(recorded)
        return recorded

    async def read(
        self, stream_id: str, *, after_version: int = 0, up_to_version: int | None = None
    ) -> list[RecordedEvent]:
        return await self._inner.read(
            stream_id, after_version=after_version, up_to_version=up_to_version
        )

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        records = await self._inner.read_all(after_position, limit)
        self._saw(records)
        return records

    async def stream_version(self, stream_id: str) -> int:
        return await self._inner.stream_version(stream_id)

    async def list_streams(self, limit: int = 50) -> list[StreamSummary]:
        return await self._inner.list_streams(limit)

    async def find_streams(self, prefix: str, limit: int = 2) -> list[str]:
        return await self._inner.find_streams(prefix, limit)

    async def stream_head(self, stream_id: str) -> StreamSummary | None:
        return await self._inner.stream_head(stream_id)

    async def stream_heads(self, after: str = "", limit: int = 1000) -> list[StreamSummary]:
        return await self._inner.stream_heads(after, limit)

    async def is_processed(self, tracking: Tracking) -> bool:
        return await self._inner.is_processed(tracking)

    async def load_checkpoint(self, name: str) -> int:
        position = await self._inner.load_checkpoint(name)
        self._metrics.checkpoints[name] = position
        return position

    async def save_checkpoint(self, name: str, position: int) -> None:
        await self._inner.save_checkpoint(name, position)
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
