"""One outbox relay at a time, however many supervisors run.

Supervisors scale out safely on the consuming side (the group splits partitions; appends are
optimistic and tracked), but every instance running the relay would publish every record once
per instance. Duplicates would be harmless — consumers dedupe by ``ce_id`` — so the lease is
about not doing the work N times. It is a Postgres session-level advisory lock: it lives as
long as the holder's connection, so a crashed leader's lease frees itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

import asyncpg

from shared.eventstore.postgres import CONNECTION_ERRORS
from shared.resource import AsyncResource

__all__ = ["AlwaysLeader", "Lease", "PostgresAdvisoryLease"]

_log = logging.getLogger(__name__)

# "agentlog relay" as a lock key; any constant works as long as every supervisor uses it.
RELAY_LOCK_KEY = 0x61676C6F6752
# What a lost or broken lease connection raises. asyncpg's InternalClientError is among them:
# after the server drops a session mid-query the protocol can refuse the next one ("another
# operation is in progress"); escaping, it ended the supervisor.
_LOST = (*CONNECTION_ERRORS, asyncpg.PostgresError)


class Lease(Protocol):
    """Exclusive leadership among supervisors."""

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this process leads (True) or ``stop`` is set (False)."""
        ...

    async def held(self) -> bool:
        """Whether leadership is still held (False after the lease was lost)."""
        ...


class AlwaysLeader:
    """A lease for a single supervisor and for unit tests: always held."""

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Leads at once."""
        return not stop.is_set()

    async def held(self) -> bool:
        """Always."""
        return True


class PostgresAdvisoryLease(AsyncResource):
    """Leadership as ``pg_try_advisory_lock`` on a dedicated connection."""

    def __init__(self, dsn: str, *, key: int = RELAY_LOCK_KEY, retry_s: float = 1.0) -> None:
        self._dsn = dsn
        self._key = key
        self._retry_s = retry_s
        self._conn: asyncpg.Connection | None = None

    async def start(self) -> None:
        """Nothing to open yet: the connection is made when leadership is sought."""

    async def stop(self) -> None:
        """Give leadership up (closing the session releases the lock)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Try the lock every ``retry_s`` until it is ours or ``stop`` is set."""
        while not stop.is_set():
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(self._dsn)
                if await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key):
                    return True
            except _LOST as exc:
                _log.warning("relay lease unavailable: %r", exc)
                await self.stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._retry_s)
        return False

    async def held(self) -> bool:
        """True while the session that took the lock is alive."""
        if self._conn is None or self._conn.is_closed():
            return False
        try:
            await self._conn.fetchval("SELECT 1")
        except _LOST:
            await self.stop()
            return False
        return True
