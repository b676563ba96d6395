"""The relay lease survives a broken lease connection instead of ending the supervisor."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from services.supervisor.leadership import PostgresAdvisoryLease


class _Conn:
    """A lease connection whose first query fails as a session dropped mid-query can."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.closed = False

    def is_closed(self) -> bool:
        return self.closed

    async def fetchval(self, query: str, *args: Any) -> bool:
        if self.fail:
            raise asyncpg.InternalClientError(
                "cannot switch to state 12; another operation (2) is in progress"
            )
        return True

    async def close(self, **_: object) -> None:
        self.closed = True


async def test_a_broken_lease_connection_is_replaced_not_fatal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An InternalClientError on the lease connection closes it; the next try, on a new
    connection, takes the lease."""
    made: list[_Conn] = []

    async def connect(dsn: str) -> _Conn:
        made.append(_Conn(fail=not made))
        return made[-1]

    monkeypatch.setattr(asyncpg, "connect", connect)
    lease = PostgresAdvisoryLease("postgresql://unused", retry_s=0.01)
    assert await asyncio.wait_for(lease.acquire(asyncio.Event()), 5)
    assert [conn.closed for conn in made] == [True, False]


async def test_a_broken_connection_means_the_lease_is_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """held() answers False, without raising, when the lease connection is broken."""

    async def connect(dsn: str) -> _Conn:
        return _Conn(fail=False)

    monkeypatch.setattr(asyncpg, "connect", connect)
    lease = PostgresAdvisoryLease("postgresql://unused", retry_s=0.01)
    assert await lease.acquire(asyncio.Event())
    assert lease._conn is not None
    conn = lease._conn
    assert isinstance(conn, _Conn)
    conn.fail = True
    assert not await lease.held()
