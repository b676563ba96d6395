"""The hash chain that makes each stream tamper-evident (``agentlog-chain-v1``).

Every event's ``hash`` is ``sha256(prev ‖ body_digest ‖ recorded_at_us)``:

* ``prev``: the 32-byte hash of the stream's previous event; ``ZERO_HASH`` for a stream's first
  hashed event (a new stream, a fork, or the first event after legacy rows);
* ``body_digest``: ``sha256`` of the event's canonical JSON (``canonical_json``) holding
  stream_id, type, version, schema_version, event_id, data and metadata;
* ``recorded_at_us``: recorded_at as integer microseconds since the Unix epoch, 8 bytes
  big-endian signed (what Postgres's ``int8send`` writes).

The client computes the body digest (Python owns the canonical JSON) and the database finishes
the link inside the append's transaction, because only it knows ``recorded_at`` and the head.
This module is the one definition both adapters and every verifier use; docs/audit.md spells
it out byte by byte for auditors who reimplement it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "CHAIN",
    "ZERO_HASH",
    "body_digest",
    "canonical_json",
    "link_hash",
    "recorded_micros",
]

CHAIN = "agentlog-chain-v1"
ZERO_HASH = "00" * 32
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def canonical_json(value: Any) -> str:
    """One text per JSON value: sorted keys, no spaces, every non-ASCII character escaped.

    ASCII-only output is plain bytes in any encoding and holds lone surrogates (which UTF-8
    cannot); ``allow_nan=False`` because the store never holds NaN or Infinity.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def body_digest(
    *,
    stream_id: str,
    version: int,
    type: str,
    schema_version: int,
    event_id: str,
    data: dict[str, Any],
    metadata: dict[str, Any],
) -> bytes:
    """The SHA-256 of the event's canonical JSON: every field but its position and time."""
    body = {
        "data": data,
        "event_id": event_id,
        "metadata": metadata,
        "schema_version": schema_version,
        "stream_id": stream_id,
        "type": type,
        "version": version,
    }
    return hashlib.sha256(canonical_json(body).encode("ascii")).digest()


def recorded_micros(at: datetime) -> int:
    """``at`` as whole microseconds since the epoch: exact, like Postgres's timestamptz."""
    return (at - _EPOCH) // _MICROSECOND


def link_hash(prev_hash: str, digest: bytes, micros: int) -> str:
    """The event's hash (lowercase hex) from its predecessor's, its body digest and its time."""
    data = bytes.fromhex(prev_hash) + digest + micros.to_bytes(8, "big", signed=True)
    return hashlib.sha256(data).hexdigest()
