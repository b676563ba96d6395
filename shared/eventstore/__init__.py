"""The append-only event store: port and adapters.

``PostgresEventStore`` is imported on first use, so code that needs only the port (the domain,
unit tests) does not import asyncpg.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.eventstore.memory import InMemoryEventStore
from shared.eventstore.port import (
    AlreadyProcessedError,
    ConcurrencyConflictError,
    EventStore,
    EventStoreError,
    NewEvent,
    RecordedEvent,
    StoreUnavailableError,
    StreamSummary,
    Tracking,
)

if TYPE_CHECKING:
    from shared.eventstore.postgres import PostgresEventStore

__all__ = [
    "AlreadyProcessedError",
    "ConcurrencyConflictError",
    "EventStore",
    "EventStoreError",
    "InMemoryEventStore",
    "NewEvent",
    "PostgresEventStore",
    "RecordedEvent",
    "StoreUnavailableError",
    "StreamSummary",
    "Tracking",
]


def __getattr__(name: str) -> Any:
    if name == "PostgresEventStore":
        from shared.eventstore.postgres import PostgresEventStore

        return PostgresEventStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
