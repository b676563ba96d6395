"""An in-process event store for unit tests: the Postgres adapter's behaviour, without I/O.

It passes the same contract suite as ``PostgresEventStore``. Events are kept as the same JSON
text Postgres would store (``_codec``), so it accepts and rejects the same data and callers can
never mutate what was recorded. No method awaits while it changes state, so each call is atomic
under asyncio, which is what makes ``read_all`` follow commit order here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.eventstore._codec import (
    check_append,
    check_text,
    decode_json,
    encode_events,
    event_digests,
)
from shared.eventstore.chain import ZERO_HASH, link_hash, recorded_micros
from shared.eventstore.port import (
    AlreadyProcessedError,
    ConcurrencyConflictError,
    EventStore,
    EventStoreError,
    NewEvent,
    RecordedEvent,
    StreamSummary,
    Tracking,
)

__all__ = ["InMemoryEventStore"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Row:
    """A stored event: JSON kept as text, decoded afresh on every read."""

    position: int
    stream_id: str
    version: int
    type: str
    schema_version: int
    event_id: str
    data: str
    metadata: str
    recorded_at: datetime
    hash: str

    def recorded(self) -> RecordedEvent:
        return RecordedEvent(
            position=self.position,
            stream_id=self.stream_id,
            version=self.version,
            type=self.type,
            schema_version=self.schema_version,
            data=decode_json(self.data),
            event_id=self.event_id,
            metadata=decode_json(self.metadata),
            recorded_at=self.recorded_at,
            hash=self.hash,
        )

    def head(self, first: _Row) -> StreamSummary:
        """The head of the stream this row ends, which began with ``first``."""
        return StreamSummary(
            stream_id=self.stream_id,
            version=self.version,
            first_type=first.type,
            last_type=self.type,
            created_at=first.recorded_at,
            updated_at=self.recorded_at,
            last_hash=self.hash,
        )


class InMemoryEventStore(EventStore):
    """Event store in a list; ``clock`` supplies recorded_at (default: now, UTC)."""

    def __init__(self, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._clock = clock
        self._log: list[_Row] = []
        self._streams: dict[str, list[_Row]] = {}
        self._event_ids: set[str] = set()
        self._tracking: dict[tuple[str, str], int | None] = {}
        self._checkpoints: dict[str, int] = {}
        self._watchers: dict[str, set[asyncio.Event]] = {}

    async def start(self) -> None:
        """Nothing to open."""

    async def stop(self) -> None:
        """Nothing to release; the data stays for a later start."""

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        tracking: Tracking | None = None,
    ) -> list[RecordedEvent]:
        """Append all events or none (see the port for the errors)."""
        check_append(stream_id, events, expected_version, tracking)
        data, metadata = encode_events(events)
        # Check everything before changing anything: that is the all-or-nothing.
        stream = self._streams.get(stream_id, [])
        key = (tracking.consumer, tracking.key) if tracking else None
        if key is not None and key in self._tracking:
            # Checked first, as in Postgres: a redelivered message is the likelier cause.
            raise AlreadyProcessedError(*key)
        if len(stream) != expected_version:
            raise ConcurrencyConflictError(stream_id, expected_version, len(stream))
        ids = [e.event_id for e in events]
        if len(set(ids)) != len(ids) or not self._event_ids.isdisjoint(ids):
            raise EventStoreError("an event id in this batch is already recorded")

        now = self._clock()
        decoded = [(decode_json(d), decode_json(m)) for d, m in zip(data, metadata, strict=True)]
        links = self._chain(
            stream, event_digests(stream_id, expected_version, events, decoded), now
        )
        rows = [
            _Row(
                position=len(self._log) + i,
                stream_id=stream_id,
                version=expected_version + i,
                type=e.type,
                schema_version=e.schema_version,
                event_id=e.event_id,
                data=d,
                metadata=m,
                recorded_at=now,
                hash=link,
            )
            for i, (e, d, m, link) in enumerate(
                zip(events, data, metadata, links, strict=True), start=1
            )
        ]
        self._log.extend(rows)
        if rows:
            self._streams.setdefault(stream_id, []).extend(rows)
        self._event_ids.update(ids)
        if key is not None:
            self._tracking[key] = rows[-1].position if rows else None
        if rows:
            for appended in self._watchers.get(stream_id, ()):
                appended.set()
        return [r.recorded() for r in rows]

    @asynccontextmanager
    async def watch(self, stream_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set by every append to ``stream_id`` while open (and on entry)."""
        check_text("stream_id", stream_id)
        appended = asyncio.Event()
        appended.set()
        watchers = self._watchers.setdefault(stream_id, set())
        watchers.add(appended)
        try:
            yield appended
        finally:
            watchers.discard(appended)
            if not watchers:
                del self._watchers[stream_id]

    @staticmethod
    def _chain(stream: list[_Row], digests: list[bytes], now: datetime) -> list[str]:
        """Each new event's hash, chained from the stream's last one (as append_events does)."""
        prev, micros = stream[-1].hash if stream else ZERO_HASH, recorded_micros(now)
        links: list[str] = []
        for digest in digests:
            prev = link_hash(prev, digest, micros)
            links.append(prev)
        return links

    async def read(
        self, stream_id: str, *, after_version: int = 0, up_to_version: int | None = None
    ) -> list[RecordedEvent]:
        """The stream's events in version order, optionally bounded."""
        check_text("stream_id", stream_id)
        upper = float("inf") if up_to_version is None else up_to_version
        return [
            r.recorded()
            for r in self._streams.get(stream_id, [])
            if after_version < r.version <= upper
        ]

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Every stream's events in commit order (positions are 1, 2, 3, ...)."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, not {limit}")
        start = max(after_position, 0)
        return [r.recorded() for r in self._log[start : start + limit]]

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 when it does not exist)."""
        check_text("stream_id", stream_id)
        return len(self._streams.get(stream_id, []))

    async def list_streams(self, limit: int = 50) -> list[StreamSummary]:
        """Streams, most recently appended to first."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, not {limit}")
        heads = sorted(self._streams.values(), key=lambda rows: rows[-1].position, reverse=True)
        return [rows[-1].head(rows[0]) for rows in heads[:limit]]

    async def stream_head(self, stream_id: str) -> StreamSummary | None:
        """The stream's head (None when it does not exist)."""
        check_text("stream_id", stream_id)
        rows = self._streams.get(stream_id)
        return rows[-1].head(rows[0]) if rows else None

    async def stream_heads(self, after: str = "", limit: int = 1000) -> list[StreamSummary]:
        """Up to ``limit`` heads of streams whose id sorts after ``after``, in code-point order."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, not {limit}")
        if after:
            check_text("after", after)
        ids = sorted(s for s in self._streams if s > after)[:limit]
        return [self._streams[s][-1].head(self._streams[s][0]) for s in ids]

    async def find_streams(self, prefix: str, limit: int = 2) -> list[str]:
        """Up to ``limit`` stream ids starting with ``prefix``, in id order."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, not {limit}")
        check_text("prefix", prefix)
        return sorted(s for s in self._streams if s.startswith(prefix))[:limit]

    async def is_processed(self, tracking: Tracking) -> bool:
        """Whether the tracking key was recorded."""
        check_text("tracking.consumer", tracking.consumer)
        check_text("tracking.key", tracking.key)
        return (tracking.consumer, tracking.key) in self._tracking

    async def load_checkpoint(self, name: str) -> int:
        """A follower's last processed global position (0 when none)."""
        check_text("checkpoint name", name)
        return self._checkpoints.get(name, 0)

    async def save_checkpoint(self, name: str, position: int) -> None:
        """Record a follower's progress; a lower position than the stored one is ignored."""
        check_text("checkpoint name", name)
        if position < 0:
            raise ValueError(f"position must be >= 0, not {position}")
        self._checkpoints[name] = max(self._checkpoints.get(name, 0), position)
