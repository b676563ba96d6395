"""Walking one stream's hash chain: the rules every verifier (database or bundle) applies.

Pure: it gets a stream's head and then its events in version order, and says what is wrong
with the first bad one. Legacy events (no hash: written before the store kept hashes) may only
come before the chain starts; the first hashed event links to ``ZERO_HASH``. A task command's
references (``shared.domain.blobs``) must name values earlier events of the stream record, so
the chain also proves what each agent was given; a walk that starts past version 1 (a bundle
cut with ``--since``) lacks the earlier events and skips that check.
"""

from __future__ import annotations

from shared.domain.blobs import StreamValues, UnresolvedBlobError
from shared.eventstore import RecordedEvent, StreamSummary
from shared.eventstore.chain import ZERO_HASH, body_digest, link_hash, recorded_micros

__all__ = ["StreamCheck", "event_hash"]


def event_hash(prev_hash: str, event: RecordedEvent) -> str:
    """The hash ``event`` must have when its stream's previous hash is ``prev_hash``."""
    digest = body_digest(
        stream_id=event.stream_id,
        version=event.version,
        type=event.type,
        schema_version=event.schema_version,
        event_id=event.event_id,
        data=event.data,
        metadata=event.metadata,
    )
    return link_hash(prev_hash, digest, recorded_micros(event.recorded_at))


class StreamCheck:
    """One stream's chain, checked event by event against its head.

    ``anchored``: the walk may start past version 1 (a bundle exported with ``--since``); the
    first event's stated ``prev_hash`` is then taken on trust as the start of the chain.
    """

    def __init__(self, head: StreamSummary, *, anchored: bool = False) -> None:
        self.head = head
        self.checked = 0
        self.legacy = 0
        self._next: int | None = None if anchored else 1
        self._prev: str | None = None  # the last hashed event's hash: None before the chain
        # What commands may refer to (None: the walk did not start at version 1, so a
        # reference may point before it).
        self._values: StreamValues | None = None if anchored else StreamValues()

    @property
    def expected_version(self) -> int | None:
        """The version the next event must have (None until an anchored walk starts)."""
        return self._next

    def event(
        self, event: RecordedEvent, stated_prev: str | None = None, *, bundle: bool = False
    ) -> str | None:
        """Why ``event`` breaks the chain, or None (and the walk moves on).

        ``bundle``: the event comes with a ``stated_prev`` (its line's prev_hash), which must
        be the hash it links to (null for a legacy event).
        """
        stream_id = self.head.stream_id
        if event.stream_id != stream_id:
            return f"an event of stream {event.stream_id!r} inside stream {stream_id!r}"
        if self._next is None:
            self._next = event.version
            if stated_prev not in (None, ZERO_HASH):
                self._prev = stated_prev
        if event.version != self._next:
            return f"version {event.version} where version {self._next} was expected"
        if event.hash is None:
            if self._prev is not None:
                return "no hash, though earlier events of the stream are chained"
            if bundle and stated_prev is not None:
                return "a legacy event (no hash) with a prev_hash"
            self.legacy += 1
        else:
            prev = self._prev or ZERO_HASH
            if bundle and stated_prev != prev:
                after = "the zero hash" if self._prev is None else f"version {event.version - 1}'s"
                return f"prev_hash is not {after} hash"
            if event_hash(prev, event) != event.hash:
                return "the hash does not match the event's content"
            self._prev = event.hash
        if reason := self._references(event):
            return reason
        self._next += 1
        self.checked += 1
        return None

    def _references(self, event: RecordedEvent) -> str | None:
        if self._values is None:
            return None
        if event.type == "TaskScheduled":
            try:
                self._values.expand(event.data.get("command"))
            except UnresolvedBlobError:
                return "the command refers to a value no earlier event of the stream records"
        self._values.add(event.data)
        return None

    def end(self) -> str | None:
        """Why the walk does not end at the head (events missing at the end), or None."""
        last = (self._next or 1) - 1
        if last != self.head.version:
            return f"the head is at version {self.head.version}, the last event is version {last}"
        if self._prev != self.head.last_hash:
            return "the last event's hash is not the one the head keeps"
        return None
