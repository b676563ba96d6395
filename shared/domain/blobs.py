"""Task commands by content reference: a long input is stored once per workflow, not per task.

A task's command repeats what earlier events of its workflow recorded: the passages a search
returned, the draft under revision, the manifest, the goal. Stored whole, every write, critique
and summary copied them again, and the commands were over half of a workflow's bytes. So the
supervisor records such a value as ``{"$blob": "<digest>"}`` when the very same JSON value (a
string, object or array whose canonical JSON is ``MIN_CHARS`` or longer) is recorded in an
earlier event of the same stream, and whatever sends or compares a command expands it from that
stream's own events (``collect``, ``expand``). The digest is the SHA-256, in hex, of the value's
canonical JSON: sorted keys, no spaces, non-ASCII escaped (the hash chain's form, docs/audit.md).

The audit record loses nothing: the command the agent received is the expansion, exactly; the
digest pins the value and the event holding it is hash-chained like every other. A fork's
stream holds its parent's history inside its ``WorkflowForked`` event, so its references expand
without the parent. Commands recorded before this existed hold no reference and expand to
themselves.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

__all__ = [
    "BLOB_KEY",
    "MIN_CHARS",
    "UnresolvedBlobError",
    "collect",
    "compact",
    "digest",
    "expand",
    "has_blobs",
    "index",
]

#: The one key of a reference object.
BLOB_KEY = "$blob"
#: Shorter strings stay inline: a reference costs about 80 bytes of JSON.
MIN_CHARS = 256

_DIGEST = re.compile(r"[0-9a-f]{64}")


class UnresolvedBlobError(ValueError):
    """A reference whose text no event of the stream records."""


def _canonical(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def digest(value: Any) -> str:
    """The reference key of a JSON value: the SHA-256 of its canonical JSON, in hex."""
    return hashlib.sha256(_canonical(value).encode("ascii")).hexdigest()


def _key(value: Any) -> str | None:
    """The digest of a string, object or array long enough to be held by reference."""
    if isinstance(value, str) and len(value) < MIN_CHARS:
        return None  # its JSON is at least as long, but a short string is not worth a dump
    if not isinstance(value, str | list | dict):
        return None
    text = _canonical(value)
    if len(text) < MIN_CHARS:
        return None
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def index(values: Iterable[Any]) -> dict[str, Any]:
    """The long values among ``values``, by digest: what ``compact`` may refer to."""
    found: dict[str, Any] = {}
    for value in values:
        key = _key(value)
        if key is not None:
            found[key] = value
    return found


def compact(value: Any, recorded: Mapping[str, Any]) -> Any:
    """``value`` with the largest parts that are in ``recorded`` (``index``) replaced by
    references. ``recorded`` must hold only values an earlier event of the stream records
    verbatim: a reference to anything else could never be expanded."""
    if not recorded:
        return value
    key = _key(value)
    if key is None:
        return value  # a part's JSON is shorter than its container's: none is long enough
    if key in recorded:
        return {BLOB_KEY: key}
    if isinstance(value, list):
        return [compact(item, recorded) for item in value]
    if isinstance(value, dict):
        return {name: compact(item, recorded) for name, item in value.items()}
    return value


def _reference(value: Mapping[str, Any]) -> str | None:
    if len(value) != 1:
        return None
    key = value.get(BLOB_KEY)
    return key if isinstance(key, str) and _DIGEST.fullmatch(key) else None


def expand(value: Any, values: Mapping[str, Any]) -> Any:
    """``value`` with every reference replaced by a fresh copy of its value from ``values``
    (see ``collect``). Raises UnresolvedBlobError for a reference ``values`` does not hold."""
    if isinstance(value, list):
        return [expand(item, values) for item in value]
    if isinstance(value, dict):
        key = _reference(value)
        if key is None:
            return {name: expand(item, values) for name, item in value.items()}
        if key not in values:
            raise UnresolvedBlobError(f"no event of this workflow records the value {key[:12]}…")
        return expand(values[key], values)  # a copy: the caller may change what it gets
    return value


def has_blobs(value: Any) -> bool:
    """Whether ``value`` holds a reference anywhere."""
    if isinstance(value, list):
        return any(has_blobs(item) for item in value)
    if isinstance(value, dict):
        return _reference(value) is not None or any(has_blobs(item) for item in value.values())
    return False


def collect(value: Any, into: MutableMapping[str, Any]) -> None:
    """Add every long value in ``value`` (an event's JSON data), at any depth, to ``into`` by
    digest: what references to them expand to."""
    key = _key(value)
    if key is None:
        return  # nor is any part of it
    into[key] = value
    if isinstance(value, list):
        for item in value:
            collect(item, into)
    elif isinstance(value, dict):
        for item in value.values():
            collect(item, into)
