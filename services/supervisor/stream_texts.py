"""The long values each workflow's events record, by digest: what commands' references expand to.

A ``TaskScheduled`` command holds the passages, drafts and manifest it repeats by reference
(``shared.domain.blobs``); the relay must send the whole command. It reads the log in order, so
a command's values were in records it read just before; those are kept here, a few hundred
workflows' worth. A workflow it has not read from its start (the relay restarted, or the
workflow was forgotten) is read from the store once when a reference misses.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from shared.domain.blobs import StreamValues, UnresolvedBlobError
from shared.eventstore import EventStore, RecordedEvent

__all__ = ["StreamTexts"]


class StreamTexts:
    """``StreamValues`` per stream, for the streams read most recently."""

    def __init__(self, store: EventStore, *, keep: int = 256) -> None:
        self._store = store
        self._keep = keep
        self._streams: OrderedDict[str, StreamValues] = OrderedDict()
        #: How many times a reference missed and the stream was read (tests and bench read it).
        self.reads = 0

    def observe(self, record: RecordedEvent) -> None:
        """Remember what ``record`` holds (call for every record, in log order)."""
        self._stream(record.stream_id).add(record.data)

    async def command(self, record: RecordedEvent) -> Any:
        """The command a ``TaskScheduled`` record sends, its references expanded.

        Raises UnresolvedBlobError (a ValueError) when no event of the stream before the
        record holds a referenced value: the record cannot be sent.
        """
        command = record.data.get("command")
        stream = self._stream(record.stream_id)
        try:
            return stream.expand(command)
        except UnresolvedBlobError:
            pass
        self.reads += 1
        for earlier in await self._store.read(record.stream_id, up_to_version=record.version):
            stream.add(earlier.data)
        return stream.expand(command)

    def _stream(self, stream_id: str) -> StreamValues:
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = self._streams[stream_id] = StreamValues()
            while len(self._streams) > self._keep:
                self._streams.popitem(last=False)
        else:
            self._streams.move_to_end(stream_id)
        return stream
