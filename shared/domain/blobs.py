"""Task commands by content reference: a long input is stored once per workflow, not per task.

A task's command repeats what earlier events of its workflow recorded: the passages a search
returned, the draft under revision, the manifest, the goal. Stored whole, every write, critique
and summary copied them again, and the commands were over half of a workflow's bytes. So the
supervisor records such a string as ``{"$blob": "<sha256 hex of its UTF-8>"}`` when the very same
string (``MIN_CHARS`` or longer) is recorded in an earlier event of the same stream, and whatever
sends or compares a command expands it from that stream's own events (``collect``, ``expand``).

The audit record loses nothing: the command the agent received is the expansion, byte for byte;
the digest pins the exact text and the event holding it is hash-chained like every other. A
fork's stream holds its parent's history inside its ``WorkflowForked`` event, so its references
expand without the parent. Commands recorded before this existed hold no reference and expand to
themselves.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping, MutableMapping
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
]

#: The one key of a reference object.
BLOB_KEY = "$blob"
#: Shorter strings stay inline: a reference costs about 80 bytes of JSON.
MIN_CHARS = 256

_DIGEST = re.compile(r"[0-9a-f]{64}")


class UnresolvedBlobError(ValueError):
    """A reference whose text no event of the stream records."""


def digest(text: str) -> str:
    """The reference key of ``text``: the SHA-256 of its UTF-8, in hex (``sha256sum`` agrees)."""
    return hashlib.sha256(text.encode()).hexdigest()


def compact(value: Any, recorded: Collection[str]) -> Any:
    """``value`` with every string of ``MIN_CHARS`` or more that is in ``recorded`` replaced by
    its reference. ``recorded`` must hold only strings an earlier event of the stream records
    verbatim: a reference to anything else could never be expanded."""
    if isinstance(value, str):
        if len(value) >= MIN_CHARS and value in recorded:
            return {BLOB_KEY: digest(value)}
        return value
    if isinstance(value, list):
        return [compact(item, recorded) for item in value]
    if isinstance(value, dict):
        return {key: compact(item, recorded) for key, item in value.items()}
    return value


def _reference(value: Mapping[str, Any]) -> str | None:
    if len(value) != 1:
        return None
    key = value.get(BLOB_KEY)
    return key if isinstance(key, str) and _DIGEST.fullmatch(key) else None


def expand(value: Any, texts: Mapping[str, str]) -> Any:
    """``value`` with every reference replaced by its text from ``texts`` (see ``collect``).

    Raises UnresolvedBlobError for a reference ``texts`` does not hold.
    """
    if isinstance(value, list):
        return [expand(item, texts) for item in value]
    if isinstance(value, dict):
        key = _reference(value)
        if key is None:
            return {name: expand(item, texts) for name, item in value.items()}
        text = texts.get(key)
        if text is None:
            raise UnresolvedBlobError(f"no event of this workflow records the text {key[:12]}…")
        return text
    return value


def has_blobs(value: Any) -> bool:
    """Whether ``value`` holds a reference anywhere."""
    if isinstance(value, list):
        return any(has_blobs(item) for item in value)
    if isinstance(value, dict):
        return _reference(value) is not None or any(has_blobs(item) for item in value.values())
    return False


def collect(value: Any, into: MutableMapping[str, str]) -> None:
    """Add every string of ``MIN_CHARS`` or more in ``value`` (an event's JSON data) to
    ``into``, by digest: what references to them expand to."""
    if isinstance(value, str):
        if len(value) >= MIN_CHARS:
            into[digest(value)] = value
    elif isinstance(value, list):
        for item in value:
            collect(item, into)
    elif isinstance(value, dict):
        for item in value.values():
            collect(item, into)
