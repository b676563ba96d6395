"""The append-only event store: port and adapters."""

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

__all__ = [
    "AlreadyProcessedError",
    "ConcurrencyConflictError",
    "EventStore",
    "EventStoreError",
    "NewEvent",
    "RecordedEvent",
    "StreamSummary",
    "Tracking",
]
