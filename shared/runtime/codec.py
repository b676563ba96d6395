"""Between domain events (pydantic) and the store's records (type, version, JSON data)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry import propagate

from schemas.events import DomainEvent, upcast
from shared.eventstore import NewEvent, RecordedEvent

__all__ = ["decode_history", "encode_events", "trace_carrier"]


def trace_carrier() -> dict[str, str]:
    """The current W3C trace context, to store with events so audits can find the trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def encode_events(
    events: Iterable[DomainEvent],
    *,
    actor: str,
    correlation_id: str,
    causation_id: str | None,
    principal: str | None = None,
) -> list[NewEvent]:
    """Store records for new domain events, with causation and trace metadata.

    ``principal`` is the verified signer of the message that caused them (the audit's "who").
    """
    metadata: dict[str, Any] = {
        "actor": actor,
        "principal": principal,
        "correlation_id": correlation_id,
        "causation_id": causation_id,
        "trace_context": trace_carrier(),
    }
    return [
        NewEvent(
            type=event.event_type(),
            schema_version=event.VERSION,
            data=event.model_dump(mode="json"),
            metadata=dict(metadata),
        )
        for event in events
    ]


def decode_history(records: Iterable[RecordedEvent]) -> list[DomainEvent]:
    """Domain events from stored records, upcasting older schema versions."""
    return [upcast(r.type, r.schema_version, r.data) for r in records]
