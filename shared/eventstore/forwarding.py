"""``ForwardingEventStore``: a store that hands every call to another one.

The base of interceptors around the port (tracing, metrics): each overrides only the calls it
watches, and a method added to the port is forwarded here once, not in every interceptor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

from shared.eventstore.port import EventStore, NewEvent, RecordedEvent, StreamSummary, Tracking

__all__ = ["ForwardingEventStore"]


class ForwardingEventStore(EventStore):
    """Delegates every call to ``inner``."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        tracking: Tracking | None = None,
    ) -> list[RecordedEvent]:
        return await self.inner.append(stream_id, events, expected_version, tracking=tracking)

    async def read(
        self, stream_id: str, *, after_version: int = 0, up_to_version: int | None = None
    ) -> list[RecordedEvent]:
        return await self.inner.read(
            stream_id, after_version=after_version, up_to_version=up_to_version
        )

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        return await self.inner.read_all(after_position, limit)

    async def stream_version(self, stream_id: str) -> int:
        return await self.inner.stream_version(stream_id)

    async def list_streams(self, limit: int = 50) -> list[StreamSummary]:
        return await self.inner.list_streams(limit)

    async def find_streams(self, prefix: str, limit: int = 2) -> list[str]:
        return await self.inner.find_streams(prefix, limit)

    async def stream_head(self, stream_id: str) -> StreamSummary | None:
        return await self.inner.stream_head(stream_id)

    async def stream_heads(self, after: str = "", limit: int = 1000) -> list[StreamSummary]:
        return await self.inner.stream_heads(after, limit)

    def watch(self, stream_id: str) -> AbstractAsyncContextManager[asyncio.Event]:
        return self.inner.watch(stream_id)

    async def is_processed(self, tracking: Tracking) -> bool:
        return await self.inner.is_processed(tracking)

    async def load_checkpoint(self, name: str) -> int:
        return await self.inner.load_checkpoint(name)

    async def save_checkpoint(self, name: str, position: int) -> None:
        await self.inner.save_checkpoint(name, position)
