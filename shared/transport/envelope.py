"""CloudEvents binary content mode on Kafka: ``ce_*`` headers, a JSON value, the workflow id as key.

Both directions go through the cloudevents 2.x Kafka binding (``cloudevents.core.bindings.kafka``).
On the way in, the binding's JSON format would parse the value into a dict and quietly fall back
to a string when the JSON is bad; agentlog instead keeps the raw bytes (``_RawPayloadFormat``) and
lets pydantic's JSON parser validate them once, which also tells bad JSON from a bad schema.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary, to_binary
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import ValidationError

from schemas.base import Message
from schemas.registry import UnknownMessageTypeError, decode_message, encode_message
from shared.transport.port import Delivery

__all__ = [
    "CONTENT_TYPE",
    "SPECVERSION",
    "Envelope",
    "EnvelopeError",
    "InvalidMessageError",
    "KeyMismatchError",
    "MalformedRecordError",
    "RawRecord",
    "UnknownTypeError",
    "decode_envelope",
    "encode_envelope",
    "source_for",
]

CONTENT_TYPE = "application/json"
SPECVERSION = "1.0"
_CE_PREFIX = "ce_"
_CONTENT_TYPE_HEADER = "content-type"
_REQUIRED_HEADERS = ("ce_id", "ce_source", "ce_specversion")


@dataclass(frozen=True)
class RawRecord:
    """A record as it sits on a topic, before any decoding."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    #: The record's timestamp (producer or broker time), ms since the epoch; None if unknown.
    timestamp_ms: int | None = None

    @property
    def size(self) -> int:
        """Bytes of key, value and headers: what ``max_record_bytes`` limits."""
        headers = sum(len(name) + len(value) for name, value in self.headers)
        return len(self.key or b"") + len(self.value or b"") + headers


@dataclass(frozen=True)
class Envelope:
    """What a producer writes: key, value and headers of one record."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    ce_id: str


class EnvelopeError(ValueError):
    """A record that cannot become a ``Delivery``; ``reason`` is its dead-letter reason."""

    reason: ClassVar[str] = "malformed"


class MalformedRecordError(EnvelopeError):
    """Bytes that are not a CloudEvent with a JSON payload (bad JSON, bad headers, no value)."""

    reason = "malformed"


class InvalidMessageError(EnvelopeError):
    """Well-formed JSON that fails the message model's validation."""

    reason = "invalid"


class KeyMismatchError(EnvelopeError):
    """A record whose key or ``ce_subject`` is not the workflow id of its payload.

    Per-workflow ordering rests on the key: a record keyed for one workflow but acting on
    another could overtake that workflow's own records.
    """

    reason = "key-mismatch"


class UnknownTypeError(EnvelopeError):
    """A missing ``ce_type`` header, or one this version of agentlog does not know."""

    reason = "unknown-type"


class _RawPayloadFormat(JSONFormat):
    """JSON format that hands the payload back untouched, for pydantic to parse."""

    def read_data(self, body: bytes, datacontenttype: str | None) -> bytes:
        return body


def source_for(service: str) -> str:
    """The ``ce_source`` of everything a service publishes."""
    return f"agentlog/{service}"


def encode_envelope(
    message: Message,
    *,
    key: str,
    source: str,
    ce_id: str | None = None,
    subject: str | None = None,
    time: datetime | None = None,
    headers: Mapping[str, bytes] | None = None,
) -> Envelope:
    """The record for ``message``; ``subject`` defaults to ``key`` (both are the workflow id)."""
    event_id = ce_id or str(uuid.uuid4())
    event = CloudEvent(
        attributes={
            "id": event_id,
            "source": source,
            "type": message.TYPE,
            "specversion": SPECVERSION,
            "time": time or datetime.now(UTC),
            "subject": subject or key,
            "datacontenttype": CONTENT_TYPE,
        },
        data=encode_message(message),
    )
    record = to_binary(event, JSONFormat(), key_mapper=lambda _: key.encode())
    out = list(record.headers.items())
    for name, value in (headers or {}).items():
        # The envelope's own headers are not the caller's to override.
        if name.lower().startswith(_CE_PREFIX) or name.lower() == _CONTENT_TYPE_HEADER:
            raise ValueError(f"header {name!r} is reserved for the CloudEvents envelope")
        out.append((name, value))
    return Envelope(key=key.encode(), value=record.value, headers=out, ce_id=event_id)


def decode_envelope(record: RawRecord) -> Delivery:
    """The ``Delivery`` for a raw record; raises an ``EnvelopeError`` subclass when it has none."""
    headers = dict(record.headers)
    raw_type = headers.get(f"{_CE_PREFIX}type")
    if not raw_type:
        raise UnknownTypeError("record has no ce_type header")
    for required in _REQUIRED_HEADERS:
        # The binding would invent a missing id or specversion; a made-up id defeats dedupe.
        if not headers.get(required):
            raise MalformedRecordError(f"record has no {required} header")
    event = _parse_event(record, headers)
    if record.value is None:
        raise MalformedRecordError("record has no value")
    try:
        message = decode_message(event.get_type(), record.value)
    except UnknownMessageTypeError as exc:
        raise UnknownTypeError(str(exc)) from exc
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise MalformedRecordError(str(exc)) from exc
        raise InvalidMessageError(str(exc)) from exc
    _check_key(record, event, message)
    return Delivery(
        message=message,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key.decode() if record.key is not None else None,
        ce_id=event.get_id(),
        ce_type=event.get_type(),
        ce_source=event.get_source(),
        ce_time=event.get_time(),
        ce_subject=event.get_subject(),
        headers=headers,
    )


def _check_key(record: RawRecord, event: CloudEvent, message: Message) -> None:
    workflow_id = getattr(message, "workflow_id", None)
    if not isinstance(workflow_id, str):
        return
    key = record.key.decode(errors="replace") if record.key is not None else None
    if key != workflow_id:
        raise KeyMismatchError(f"record key {key!r} is not the payload's workflow {workflow_id!r}")
    subject = event.get_subject()
    if subject is not None and subject != workflow_id:
        raise KeyMismatchError(f"ce_subject {subject!r} is not the workflow {workflow_id!r}")


def _parse_event(record: RawRecord, headers: Mapping[str, bytes]) -> CloudEvent:
    # Only the envelope's headers go to the binding: it decodes every header it is given as
    # UTF-8, and trace or application headers may legitimately hold other bytes.
    envelope_headers = {
        name: value
        for name, value in headers.items()
        if name.lower().startswith(_CE_PREFIX) or name.lower() == _CONTENT_TYPE_HEADER
    }
    message = KafkaMessage(headers=envelope_headers, key=record.key, value=record.value or b"")
    try:
        event = from_binary(message, _RawPayloadFormat(), CloudEvent)
    except (BaseCloudEventException, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedRecordError(f"bad CloudEvents envelope: {exc}") from exc
    if not isinstance(event, CloudEvent):  # the factory above fixes the class; this narrows it
        raise MalformedRecordError(f"unexpected event class {type(event).__name__}")
    return event
