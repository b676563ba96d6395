"""The audit bundle's lines: how each record is written and read back (docs/audit.md).

Reading is strict, because an auditor trusts what the lines say: a key the format does not
name, a key given twice, a value of the wrong type or a time not in its one written form is an
error, not something to skip.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from shared.eventstore import RecordedEvent, StreamSummary
from shared.eventstore.chain import CHAIN

__all__ = [
    "FORMAT",
    "VERSION",
    "BundleError",
    "end_line",
    "event_line",
    "event_of",
    "hash_of",
    "head_of",
    "header_line",
    "parse",
    "provenance",
    "stream_line",
    "time_of",
    "time_text",
]

FORMAT = "agentlog-audit-bundle"
VERSION = 1
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEYS = {
    "header": {"record", "format", "version", "chain", "exported_at", "stream_id", "since"},
    "stream": {"record", "stream_id", "version", "last_hash"},
    "event": {
        *("record", "stream_id", "version", "position", "type", "schema_version", "event_id"),
        *("recorded_at", "data", "metadata", "provenance", "prev_hash", "hash"),
    },
    "end": {"record", "streams", "events"},
}


class BundleError(ValueError):
    """A line that is not a well-formed record of the bundle format."""


def _line(record: dict[str, Any]) -> str:
    text = json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: only the escaped form can hold it
            text = json.dumps(record, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text + "\n"


def time_text(at: datetime) -> str:
    """The one written form of a time: UTC, microseconds always shown."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def time_of(text: Any, what: str) -> datetime:
    """Parse a time written by ``time_text``; any other form is a BundleError."""
    if isinstance(text, str):
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if at.tzinfo is not None and time_text(at) == text:
                return at
    raise BundleError(f"{what} is not a UTC time like 2026-01-01T00:00:00.000000+00:00")


def provenance(metadata: dict[str, Any], stream_id: str) -> dict[str, Any]:
    """Who and what caused the event, as its metadata says (null where it says nothing); the
    correlation id is the stream's (the workflow) unless the metadata names another."""
    trace = metadata.get("trace_context")
    return {
        "actor": metadata.get("actor"),
        "causation_id": metadata.get("causation_id"),
        "correlation_id": metadata.get("correlation_id", stream_id),
        "traceparent": trace.get("traceparent") if isinstance(trace, dict) else None,
    }


def header_line(exported_at: datetime, stream_id: str | None, since: datetime | None) -> str:
    """The first line: what the bundle is and what it covers."""
    return _line(
        {
            "record": "header",
            "format": FORMAT,
            "version": VERSION,
            "chain": CHAIN,
            "exported_at": time_text(exported_at),
            "stream_id": stream_id,
            "since": None if since is None else time_text(since),
        }
    )


def stream_line(head: StreamSummary) -> str:
    """A stream's head, before its events: where its chain must end."""
    return _line(
        {
            "record": "stream",
            "stream_id": head.stream_id,
            "version": head.version,
            "last_hash": head.last_hash,
        }
    )


def event_line(event: RecordedEvent, prev_hash: str | None) -> str:
    """One event with everything needed to check its link."""
    return _line(
        {
            "record": "event",
            "stream_id": event.stream_id,
            "version": event.version,
            "position": event.position,
            "type": event.type,
            "schema_version": event.schema_version,
            "event_id": event.event_id,
            "recorded_at": time_text(event.recorded_at),
            "data": event.data,
            "metadata": event.metadata,
            "provenance": provenance(event.metadata, event.stream_id),
            "prev_hash": prev_hash,
            "hash": event.hash,
        }
    )


def end_line(streams: int, events: int) -> str:
    """The last line: without it a bundle is truncated."""
    return _line({"record": "end", "streams": streams, "events": events})


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        raise BundleError("an object names the same key twice")
    return record


def _no_constant(name: str) -> Any:
    raise BundleError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant)


def parse(line: str | bytes) -> dict[str, Any]:
    """One line (UTF-8 if bytes) as a record with exactly its kind's keys."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BundleError(f"not UTF-8 (byte {exc.start + 1})") from None
    try:
        record = _DECODER.decode(line)
    except json.JSONDecodeError as exc:
        raise BundleError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict) or record.get("record") not in _KEYS:
        raise BundleError("not a bundle record (header, stream, event or end)")
    keys = _KEYS[record["record"]]
    if set(record) != keys:
        odd = sorted(set(record) ^ keys)
        raise BundleError(f"{record['record']} record with wrong keys: {', '.join(odd)}")
    return record


def _typed(record: dict[str, Any], key: str, kind: type, nullable: bool = False) -> Any:
    value = record[key]
    if (value is None and nullable) or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    raise BundleError(f"{key} must be {'null or ' if nullable else ''}{kind.__name__}")


def hash_of(record: dict[str, Any], key: str) -> str | None:
    """A hash field: 64 lowercase hex digits, or null."""
    value = _typed(record, key, str, nullable=True)
    if value is not None and not _HEX64.fullmatch(value):
        raise BundleError(f"{key} is not 64 lowercase hex digits")
    return value  # type: ignore[no-any-return]  # checked just above


def head_of(record: dict[str, Any]) -> StreamSummary:
    """A stream record as the head the walk must end at (the times are not in the bundle)."""
    never = datetime.min.replace(tzinfo=UTC)
    return StreamSummary(
        stream_id=_typed(record, "stream_id", str),
        version=_typed(record, "version", int),
        first_type="",
        last_type="",
        created_at=never,
        updated_at=never,
        last_hash=hash_of(record, "last_hash"),
    )


def event_of(record: dict[str, Any]) -> RecordedEvent:
    """An event record as the event it describes; its provenance must match its metadata."""
    event = RecordedEvent(
        position=_typed(record, "position", int),
        stream_id=_typed(record, "stream_id", str),
        version=_typed(record, "version", int),
        type=_typed(record, "type", str),
        schema_version=_typed(record, "schema_version", int),
        data=_typed(record, "data", dict),
        event_id=_typed(record, "event_id", str),
        metadata=_typed(record, "metadata", dict),
        recorded_at=time_of(record["recorded_at"], "recorded_at"),
        hash=hash_of(record, "hash"),
    )
    if record["provenance"] != provenance(event.metadata, event.stream_id):
        raise BundleError("provenance does not match the event's metadata")
    return event
