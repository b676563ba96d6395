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
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, NamedTuple

__all__ = [
    "BLOB_KEY",
    "MIN_CHARS",
    "Recorded",
    "StreamValues",
    "UnresolvedBlobError",
    "collect",
    "compact",
    "digest",
    "expand",
    "has_blobs",
]

#: The one key of a reference object.
BLOB_KEY = "$blob"
#: Shorter values stay inline: a reference costs about 80 bytes of JSON.
MIN_CHARS = 256

_DIGEST = re.compile(r"[0-9a-f]{64}")


class UnresolvedBlobError(ValueError):
    """A reference to a value no event of the stream records."""


# One encoder, not one per call (json.dumps builds a new one for non-default options).
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)
_quoted: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _canonical(value: Any) -> str:
    if isinstance(value, str):
        return _quoted(value)  # what the encoder writes for a string, without its set-up
    return _ENCODER.encode(value)


def digest(value: Any) -> str:
    """The reference key of a JSON value: the SHA-256 of its canonical JSON, in hex."""
    return hashlib.sha256(_canonical(value).encode("ascii")).hexdigest()


def _key(value: Any) -> str | None:
    """The digest of a string, object or array long enough to be held by reference."""
    if isinstance(value, str):
        if len(value) < MIN_CHARS:
            return None  # its JSON is at least as long, but a short string is not worth a dump
    elif not isinstance(value, list | dict) or len(value) == 0:
        return None
    text = _canonical(value)
    if len(text) < MIN_CHARS:
        return None
    return hashlib.sha256(text.encode("ascii")).hexdigest()


class Recorded(NamedTuple):
    """Values an earlier event of the stream records, as ``compact`` looks them up: long
    strings by their text, objects and arrays by value. Digests are computed only for what
    matches, not for every value (the supervisor builds one of these per task)."""

    strings: frozenset[str]
    containers: tuple[Any, ...]

    @classmethod
    def of(cls, values: Iterable[Any]) -> Recorded:
        """The recorded ``values`` (each must be in an earlier event of the stream verbatim)."""
        strings: set[str] = set()
        containers: list[Any] = []
        for value in values:
            if isinstance(value, str):
                if len(value) >= MIN_CHARS:
                    strings.add(value)
            elif isinstance(value, list | dict):
                containers.append(value)
        return cls(frozenset(strings), tuple(containers))


def compact(value: Any, recorded: Recorded) -> Any:
    """``value`` with its largest parts that are ``recorded`` replaced by references. A
    reference to anything no earlier event of the stream records could never be expanded."""
    if isinstance(value, str):
        if len(value) >= MIN_CHARS and value in recorded.strings:
            return {BLOB_KEY: digest(value)}
        return value
    if not isinstance(value, list | dict):
        return value
    if value in recorded.containers:
        # Equal is not enough: 1 == 1.0 == True, but their JSON differs, and the reference
        # must name the recorded text exactly.
        match = recorded.containers[recorded.containers.index(value)]
        key = _key(value)
        if key is not None and key == _key(match):
            return {BLOB_KEY: key}
    if isinstance(value, list):
        return [compact(item, recorded) for item in value]
    return {name: compact(item, recorded) for name, item in value.items()}


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


def collect(data: Mapping[str, Any], into: MutableMapping[str, Any]) -> None:
    """Add every long value inside ``data`` (an event's JSON data; never the whole of it), at
    any depth, to ``into`` by digest: what references to them expand to."""
    for value in data.values():
        _collect(value, into)


def _collect(value: Any, into: MutableMapping[str, Any]) -> None:
    if not isinstance(value, str | list | dict):
        return  # numbers, booleans and null are never long (and cost a call otherwise)
    key = _key(value)
    if key is None:
        return  # nor is any part of it long enough
    into[key] = value
    if isinstance(value, list):
        for item in value:
            _collect(item, into)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, into)


class StreamValues:
    """One stream's long values, fed its events' data in order: what the references of its
    commands expand to. Values are hashed only when a reference needs them, so what follows a
    stream's last task (its ending, often long) never is."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._unread: list[Mapping[str, Any]] = []

    def add(self, data: Mapping[str, Any]) -> None:
        """The next event's data (an event's own command may refer only to those before it)."""
        self._unread.append(data)

    def expand(self, value: Any) -> Any:
        """``value`` with its references expanded (see ``expand``); UnresolvedBlobError for one
        no event added so far holds."""
        if not has_blobs(value):
            return value
        for data in self._unread:
            collect(data, self._values)
        self._unread.clear()
        return expand(value, self._values)
