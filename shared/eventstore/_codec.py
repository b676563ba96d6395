"""How values cross the store boundary, shared by every adapter so they accept and reject alike.

Event data and metadata are stored as JSON *text* (Postgres ``json``, not ``jsonb``): ``jsonb``
cannot hold ``\\u0000`` and reorders keys, while ``json`` keeps the exact text we wrote. Python's
encoder always escapes control characters, so the text never contains a raw NUL byte, and
``json.loads`` turns ``\\u0000`` back into the same character: strings, keys and nesting
round-trip exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic_core import from_json

from shared.eventstore.chain import body_digest
from shared.eventstore.port import NewEvent, Tracking

__all__ = [
    "check_append",
    "check_text",
    "decode_json",
    "encode_events",
    "encode_json",
    "event_digests",
]


def encode_json(value: dict[str, Any]) -> str:
    """Encode a JSON object as compact text; raise TypeError/ValueError for what JSON can't hold.

    ``allow_nan=False`` because NaN/Infinity are not JSON (Postgres would reject them).
    Text is kept unescaped (``ensure_ascii=False``, compact for CJK and emoji) unless it holds
    a lone surrogate, which UTF-8 cannot carry: then the ASCII form escapes it losslessly.
    """
    if not isinstance(value, dict):
        raise TypeError(f"event data and metadata must be dicts, not {type(value).__name__}")
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text


def decode_json(text: str) -> dict[str, Any]:
    """Decode text written by ``encode_json`` into a fresh object the caller may mutate.

    pydantic-core's parser (jiter) reads a stream's events about three times faster than
    ``json.loads`` and gives the same values (floats, big integers, ``\\u0000``). It refuses
    what ``encode_json`` may write but it cannot hold (an escaped lone surrogate, nesting past
    its depth limit); ``json.loads`` decodes those as before.
    """
    try:
        value: dict[str, Any] = from_json(text)
    except ValueError:
        value = json.loads(text)
    return value


def check_text(what: str, value: str) -> None:
    """Reject empty identifiers and those Postgres ``text`` cannot store (NUL, lone surrogates)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, not {value!r}")
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters: {value!r}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{what} is not valid Unicode: {value!r}") from exc


def check_append(
    stream_id: str, events: Sequence[NewEvent], expected_version: int, tracking: Tracking | None
) -> None:
    """Validate an append's arguments before any I/O, so a bad one writes nothing anywhere."""
    check_text("stream_id", stream_id)
    if expected_version < 0:
        raise ValueError(f"expected_version must be >= 0, not {expected_version}")
    if tracking is not None:
        check_text("tracking.consumer", tracking.consumer)
        check_text("tracking.key", tracking.key)
    for event in events:
        check_text("event type", event.type)
        check_text("event_id", event.event_id)
        if event.schema_version < 1:
            raise ValueError(f"schema_version must be >= 1, not {event.schema_version}")


def encode_events(events: Sequence[NewEvent]) -> tuple[list[str], list[str]]:
    """Every event's (data, metadata) text; raises before anything is written if one is bad."""
    return [encode_json(e.data) for e in events], [encode_json(e.metadata) for e in events]


def event_digests(
    stream_id: str,
    expected_version: int,
    events: Sequence[NewEvent],
    decoded: Sequence[tuple[dict[str, Any], dict[str, Any]]],
) -> list[bytes]:
    """Each event's body digest, from its data and metadata as decoded from the stored text.

    Hashing the decoded text, not the caller's dicts, makes the digest the one a verifier
    recomputes from a read: tuples, non-string keys and the like are already normalised.
    """
    return [
        body_digest(
            stream_id=stream_id,
            version=expected_version + i,
            type=e.type,
            schema_version=e.schema_version,
            event_id=e.event_id,
            data=data,
            metadata=metadata,
        )
        for i, (e, (data, metadata)) in enumerate(zip(events, decoded, strict=True), start=1)
    ]
