"""The long values each workflow's events record, by digest: what commands' references expand to.

A ``TaskScheduled`` command holds the passages, drafts and manifest it repeats by reference
(``shared.domain.blobs``); the relay must send the whole command. It reads the log in order, so
a command's values were in records it read just before; those are kept here, a few hundred
workflows' worth. A workflow it has not read from its start (the relay restarted, or the
workflow was forgotten) is read from the store once when a reference misses.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from shared.domain.blobs import UnresolvedBlobError, collect, expand, has_blobs
from shared.eventstore import EventStore, RecordedEvent

__all__ = ["StreamTexts"]


@dataclass
class _Stream:
    values: dict[str, Any] = field(default_factory=dict)
    #: Data of records not yet looked into: collected when a command needs it, so a stream's
    #: ending (often long, and after its last task) is never hashed.
    unread: list[dict[str, Any]] = field(default_factory=list)

    def catch_up(self) -> dict[str, Any]:
        for data in self.unread:
            collect(data, self.values)
        self.unread.clear()
        return self.values


class StreamTexts:
    """Long values by digest, per stream, for the streams read most recently."""

    def __init__(self, store: EventStore, *, keep: int = 256) -> None:
        self._store = store
        self._keep = keep
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        #: How many times a reference missed and the stream was read (tests and bench read it).
        self.reads = 0

    def observe(self, record: RecordedEvent) -> None:
        """Remember the long values ``record`` holds (call for every record, in log order)."""
        self._stream(record.stream_id).unread.append(record.data)

    async def command(self, record: RecordedEvent) -> Any:
        """The command a ``TaskScheduled`` record sends, its references expanded.

        Raises UnresolvedBlobError (a ValueError) when no event of the stream up to the record
        holds a referenced value: the record cannot be sent.
        """
        command = record.data.get("command")
        if not has_blobs(command):
            return command
        stream = self._stream(record.stream_id)
        try:
            return expand(command, stream.catch_up())
        except UnresolvedBlobError:
            pass
        self.reads += 1
        for earlier in await self._store.read(record.stream_id, up_to_version=record.version):
            collect(earlier.data, stream.values)
        return expand(command, stream.values)

    def _stream(self, stream_id: str) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = self._streams[stream_id] = _Stream()
            while len(self._streams) > self._keep:
                self._streams.popitem(last=False)
        else:
            self._streams.move_to_end(stream_id)
        return stream
