"""Between domain events (pydantic) and the store's records (type, version, JSON data)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import uuid4

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
    causation_id: str | None,
    principal: str | None = None,
    trigger: dict[str, object] | None = None,
) -> list[NewEvent]:
    """Store records for new domain events, with causation and trace metadata.

    No correlation id is stored: it would repeat the stream's id in every event (readers take
    the stream id when the metadata names none, as events recorded before 2026-12-01 do).

    ``principal`` is the verified signer of the message that caused them (the audit's "who");
    ``trigger`` (its kind and the time the decision was made at) lets the replayer feed the
    same input to today's code. Every event of one decision shares one ``decision_id``.
    """
    metadata: dict[str, Any] = {
        "actor": actor,
        "principal": principal,
        "trigger": trigger,
        "decision_id": str(uuid4()),
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
