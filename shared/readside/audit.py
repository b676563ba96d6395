"""Audit queries: export a tamper-evident bundle, and verify hash chains in the store or offline.

The CLI, the Python client and the web console all call these. Each reads a store a page at a
time, one stream after another, and a bundle a line at a time; what it holds is one stream's
long values (what that stream's task commands may refer to), dropped when the stream ends.
docs/audit.md describes the hash, the bundle format and what each check proves.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from contextlib import aclosing
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from shared.eventstore import EventStore, RecordedEvent, StreamSummary
from shared.eventstore.chain import CHAIN, ZERO_HASH
from shared.readside import _bundle
from shared.readside._check import StreamCheck, event_hash

__all__ = [
    "BrokenLink",
    "VerifyResult",
    "event_hash",
    "export_bundle",
    "verify_bundle",
    "verify_store",
    "verify_stream",
]

PAGE = 1000


@dataclass(frozen=True)
class BrokenLink:
    """Where a chain first breaks: the event (or head) and why; ``line`` in a bundle."""

    stream_id: str | None
    version: int | None
    position: int | None
    reason: str
    line: int | None = None


@dataclass(frozen=True)
class VerifyResult:
    """What a verification checked, and the first broken link if any (it stops there)."""

    events_checked: int
    legacy_events: int
    streams_checked: int
    first_broken: BrokenLink | None = None

    @property
    def ok(self) -> bool:
        """Whether every checked link held."""
        return self.first_broken is None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, ``ok`` first."""
        return {"ok": self.ok, **asdict(self)}


class _Tally:
    """Counts across streams; remembers the first break."""

    def __init__(self) -> None:
        self.events = self.legacy = self.streams = 0
        self.broken: BrokenLink | None = None

    def add(self, check: StreamCheck) -> None:
        self.events += check.checked
        self.legacy += check.legacy
        self.streams += 1

    def result(self) -> VerifyResult:
        return VerifyResult(self.events, self.legacy, self.streams, self.broken)


# --- the store --------------------------------------------------------------------------------


async def _events(
    store: EventStore, head: StreamSummary, page: int
) -> AsyncGenerator[RecordedEvent, None]:
    """The stream's events up to its head, a version range at a time.

    Ranges, not "after the last event read", so a missing event cannot stop the paging; events
    appended after the head was read are left for the next verification.
    """
    for low in range(0, head.version, page):
        upper = min(low + page, head.version)
        for event in await store.read(head.stream_id, after_version=low, up_to_version=upper):
            yield event


async def _verify_head(store: EventStore, head: StreamSummary, tally: _Tally, page: int) -> bool:
    check = StreamCheck(head)
    async with aclosing(_events(store, head, page)) as events:
        async for event in events:
            if reason := check.event(event):
                tally.broken = BrokenLink(event.stream_id, event.version, event.position, reason)
                break
        else:
            if reason := check.end():
                tally.broken = BrokenLink(head.stream_id, head.version, None, reason)
    tally.add(check)
    return tally.broken is None


async def verify_stream(store: EventStore, stream_id: str, *, page: int = PAGE) -> VerifyResult:
    """Check one stream's chain from version 1 to its head; LookupError if it does not exist."""
    head = await store.stream_head(stream_id)
    if head is None:
        raise LookupError(f"no stream {stream_id!r}")
    tally = _Tally()
    await _verify_head(store, head, tally, page)
    return tally.result()


async def _heads(store: EventStore, page: int) -> AsyncIterator[StreamSummary]:
    after = ""
    while heads := await store.stream_heads(after, limit=page):
        for head in heads:
            yield head
        after = heads[-1].stream_id


async def verify_store(store: EventStore, *, page: int = PAGE) -> VerifyResult:
    """Check every stream's chain, in stream id order, up to the first broken link."""
    tally = _Tally()
    async for head in _heads(store, page):
        if not await _verify_head(store, head, tally, page):
            break
    return tally.result()


async def export_bundle(
    store: EventStore,
    *,
    stream_id: str | None = None,
    since: datetime | None = None,
    page: int = PAGE,
    now: datetime | None = None,
) -> AsyncIterator[str]:
    """The bundle's lines (each ending in a newline): one stream, or every stream in id order.

    ``since`` keeps the events recorded at or after it (a timezone-aware time) and the streams
    holding any; each stream's first kept event still states its predecessor's hash, so the
    chain checks from there. Exports what is stored, broken links included: verifying is a
    separate step. LookupError when ``stream_id`` does not exist.
    """
    if since is not None and since.tzinfo is None:
        raise ValueError("since must be timezone-aware")
    if stream_id is None:
        heads = _heads(store, page)
    elif (head := await store.stream_head(stream_id)) is None:
        raise LookupError(f"no stream {stream_id!r}")
    else:
        heads = _one(head)
    yield _bundle.header_line(now or datetime.now(UTC), stream_id, since)
    streams = events = 0
    async for head in heads:
        if since is not None and head.updated_at < since:
            continue  # nothing recorded since: skip it unread
        started = since is None  # a full export names every stream, even one missing events
        if started:
            yield _bundle.stream_line(head)
            streams += 1
        prev: str | None = None  # the previous event's hash; None: no event yet, or legacy
        async for event in _events(store, head, page):
            if since is None or event.recorded_at >= since:
                if not started:
                    yield _bundle.stream_line(head)
                    started, streams = True, streams + 1
                yield _bundle.event_line(event, None if event.hash is None else prev or ZERO_HASH)
                events += 1
            prev = event.hash
    yield _bundle.end_line(streams, events)


async def _one(head: StreamSummary) -> AsyncIterator[StreamSummary]:
    yield head


# --- a bundle -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    stream_id: str | None
    since: datetime | None


def _header(record: dict[str, Any]) -> _Header:
    if record["record"] != "header":
        raise _bundle.BundleError("the first line is not a bundle header")
    if record["format"] != _bundle.FORMAT:
        raise _bundle.BundleError(f"not an {_bundle.FORMAT}")
    if record["version"] != _bundle.VERSION or record["chain"] != CHAIN:
        raise _bundle.BundleError(
            f"format version {record['version']!r} with chain {record['chain']!r} is not"
            f" supported (only {_bundle.VERSION} with {CHAIN})"
        )
    _bundle.time_of(record["exported_at"], "exported_at")
    stream_id, since = record["stream_id"], record["since"]
    if stream_id is not None and not isinstance(stream_id, str):
        raise _bundle.BundleError("stream_id must be null or str")
    return _Header(stream_id, None if since is None else _bundle.time_of(since, "since"))


class _HeadError(_bundle.BundleError):
    """A stream's events do not end where its head says."""


class _BundleWalk:
    """The state of one pass over a bundle: its header, the open stream, the counts."""

    def __init__(self) -> None:
        self.tally = _Tally()
        self.header: _Header | None = None
        self.check: StreamCheck | None = None  # the open stream's walk
        self.last_stream: str | None = None
        self.ended = False

    def line(self, record: dict[str, Any]) -> BrokenLink | None:
        """Take one parsed record; a broken link ends the walk."""
        kind = record["record"]
        if self.ended:
            raise _bundle.BundleError("a line after the end record")
        if self.header is None:
            self.header = _header(record)
        elif kind == "stream":
            self.close()
            self.open(_bundle.head_of(record))
        elif kind == "event":
            return self.event(record)
        elif kind == "end":
            self.close()
            self.end(record)
        else:
            raise _bundle.BundleError("a second header")
        return None

    def open(self, head: StreamSummary) -> None:
        assert self.header is not None
        previous, self.last_stream = self.last_stream, head.stream_id
        self.check = StreamCheck(head, anchored=self.header.since is not None)
        if previous is not None and head.stream_id <= previous:
            raise _bundle.BundleError(f"stream {head.stream_id!r} after {previous!r}: out of order")
        if self.header.stream_id not in (None, head.stream_id):
            raise _bundle.BundleError(f"stream {head.stream_id!r} in a bundle of one other stream")

    def event(self, record: dict[str, Any]) -> BrokenLink | None:
        assert self.header is not None
        if self.check is None:
            raise _bundle.BundleError("an event before any stream record")
        event = _bundle.event_of(record)
        stated_prev = _bundle.hash_of(record, "prev_hash")
        since = self.header.since
        if since is not None and event.recorded_at < since:
            reason: str | None = "recorded before the bundle's since"
        else:
            reason = self.check.event(event, stated_prev, bundle=True)
        if reason is None:
            return None
        return BrokenLink(event.stream_id, event.version, event.position, reason)

    def close(self) -> None:
        """End the open stream's walk at its head."""
        if self.check is None:
            return
        if reason := self.check.end():
            raise _HeadError(reason)  # the stream stays open, to be named
        self.tally.add(self.check)
        self.check = None

    def end(self, record: dict[str, Any]) -> None:
        assert self.header is not None
        counts = (record["streams"], record["events"])
        if counts != (self.tally.streams, self.tally.events):
            raise _bundle.BundleError(
                f"the end record counts {counts[0]} streams and {counts[1]} events; the bundle"
                f" holds {self.tally.streams} and {self.tally.events}"
            )
        if self.header.stream_id is not None and self.header.since is None and not counts[0]:
            raise _bundle.BundleError(f"no stream record for {self.header.stream_id!r}")
        self.ended = True


def verify_bundle(lines: Iterable[str | bytes]) -> VerifyResult:
    """Check an exported bundle offline, line by line, up to the first broken link.

    ``lines``: a file opened in binary mode (lines split at ``\\n`` only, bytes that are not
    UTF-8 reported as a broken line) or any iterable of text lines.

    Needs nothing but the lines: no store, no broker. Memory stays constant (one stream's
    state at a time, which the bundle's stream order makes enough).
    """
    walk = _BundleWalk()
    number = 0
    for number, text in enumerate(lines, start=1):
        try:
            broken = walk.line(_bundle.parse(text))
        except _bundle.BundleError as exc:
            check = walk.check
            stream_id = check.head.stream_id if check else None
            version = None if check is None else check.expected_version
            if check is not None and isinstance(exc, _HeadError):
                version = check.head.version
            broken = BrokenLink(stream_id, version, None, str(exc))
        if broken is not None:
            if walk.check is not None:
                walk.tally.add(walk.check)  # what it checked before the break counts
            walk.tally.broken = replace(broken, line=number)
            return walk.tally.result()
    if not walk.ended:
        reason = (
            "an empty file" if walk.header is None else "no end record: the bundle is cut short"
        )
        check, stream_id, version = walk.check, None, None
        if check is not None:
            walk.tally.add(check)
            stream_id, version = check.head.stream_id, check.expected_version
        walk.tally.broken = BrokenLink(stream_id, version, None, reason, number + 1)
    return walk.tally.result()
