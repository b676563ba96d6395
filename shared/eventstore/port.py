"""The event store port: an append-only log of workflow streams with an inbox for dedupe.

Adapters: ``PostgresEventStore`` (asyncpg, production) and ``InMemoryEventStore`` (unit tests).
Both pass the same contract suite (tests/contracts/eventstore.py).
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import uuid4

from shared.resource import AsyncResource

__all__ = [
    "AlreadyProcessedError",
    "ConcurrencyConflictError",
    "EventStore",
    "EventStoreError",
    "NewEvent",
    "RecordedEvent",
    "StoreUnavailableError",
    "StreamSummary",
    "Tracking",
]


class EventStoreError(Exception):
    """Base class of the store's own errors."""


class StoreUnavailableError(EventStoreError):
    """The store could not be reached (connection lost, server restarting); retry later.

    Nothing about the request was wrong: a consumer should retry the same message, not
    dead-letter it.
    """


class ConcurrencyConflictError(EventStoreError):
    """The stream moved since the writer read it; nothing was written."""

    def __init__(self, stream_id: str, expected_version: int, actual_version: int) -> None:
        super().__init__(
            f"stream {stream_id!r} is at version {actual_version}, "
            f"not the expected {expected_version}; nothing was written"
        )
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version


class AlreadyProcessedError(EventStoreError):
    """The tracking key was recorded before: the message's effect already exists."""

    def __init__(self, consumer: str, key: str) -> None:
        super().__init__(f"{consumer!r} already processed {key!r}; nothing was written")
        self.consumer = consumer
        self.key = key


@dataclass(frozen=True)
class Tracking:
    """Identifies a consumed message; recorded in the same transaction as its effect."""

    consumer: str
    key: str


def _new_event_id() -> str:
    return str(uuid4())


@dataclass(frozen=True)
class NewEvent:
    """An event to append. ``metadata`` keys: actor, principal, trigger, decision_id,
    causation_id, trace_context (see shared.runtime.codec)."""

    type: str
    data: dict[str, Any]
    schema_version: int = 1
    event_id: str = field(default_factory=_new_event_id)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedEvent:
    """An event as committed: with its global position and stream version."""

    position: int
    stream_id: str
    version: int
    type: str
    schema_version: int
    data: dict[str, Any]
    event_id: str
    metadata: dict[str, Any]
    recorded_at: datetime
    # Lowercase hex of the chain link (shared.eventstore.chain); None for a legacy event,
    # written before the store kept hashes.
    hash: str | None = None


@dataclass(frozen=True)
class StreamSummary:
    """One stream's head: what `agentlog list` shows, and where its hash chain ends."""

    stream_id: str
    version: int
    first_type: str
    last_type: str
    created_at: datetime
    updated_at: datetime
    # The last event's hash; None while the stream holds only legacy events.
    last_hash: str | None = None


class EventStore(AsyncResource):
    """Append-only streams, a global commit-ordered feed, tracking records and checkpoints."""

    @abstractmethod
    async def start(self) -> None:
        """Open connections and create the schema if it is missing."""

    @abstractmethod
    async def stop(self) -> None:
        """Release connections."""

    @abstractmethod
    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        tracking: Tracking | None = None,
    ) -> list[RecordedEvent]:
        """Append all events or none. ``expected_version`` 0 means "the stream is new".

        Raises ConcurrencyConflictError when the stream is not at ``expected_version`` and
        AlreadyProcessedError when ``tracking`` was recorded before. ``events`` may be empty
        to record only the tracking key.
        """

    @abstractmethod
    async def read(
        self, stream_id: str, *, after_version: int = 0, up_to_version: int | None = None
    ) -> list[RecordedEvent]:
        """The stream's events in version order, optionally bounded."""

    @abstractmethod
    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Every stream's events in commit order; never skips an event that commits later."""

    @abstractmethod
    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 when it does not exist)."""

    @abstractmethod
    async def list_streams(self, limit: int = 50) -> list[StreamSummary]:
        """Streams, most recently updated first."""

    @abstractmethod
    async def find_streams(self, prefix: str, limit: int = 2) -> list[str]:
        """Up to ``limit`` stream ids starting with ``prefix``, in id order.

        ``%`` and ``_`` in ``prefix`` are plain characters. Asking for two tells a unique
        prefix (one id) from an ambiguous one.
        """

    @abstractmethod
    async def stream_head(self, stream_id: str) -> StreamSummary | None:
        """The stream's head (None when it does not exist)."""

    @abstractmethod
    async def stream_heads(self, after: str = "", limit: int = 1000) -> list[StreamSummary]:
        """Up to ``limit`` heads of streams whose id sorts after ``after``, in id order.

        Ids compare by code point (Postgres: ``COLLATE "C"``), the order Python's ``sorted``
        gives, so pages visit every stream once and readers can check the order themselves.
        """

    @abstractmethod
    def watch(self, stream_id: str) -> AbstractAsyncContextManager[asyncio.Event]:
        """While open, an ``asyncio.Event`` set whenever events are appended to ``stream_id``
        (by this process or, for a shared store, any other).

        A wake-up, never the record: a reader clears it, reads what the stream holds past what
        it has seen, and waits for it again. It is set on entry too, and whenever appends may
        have gone unseen (a listener reconnecting), so a reader that reads after clearing it
        misses nothing; keep a slow poll as the floor in case the store cannot say at all.
        """

    @abstractmethod
    async def is_processed(self, tracking: Tracking) -> bool:
        """Whether the tracking key was recorded."""

    @abstractmethod
    async def load_checkpoint(self, name: str) -> int:
        """A follower's last processed global position (0 when none)."""

    @abstractmethod
    async def save_checkpoint(self, name: str, position: int) -> None:
        """Record a follower's progress; positions only move forward."""
