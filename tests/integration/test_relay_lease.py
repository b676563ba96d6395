"""The relay lease on real Postgres: one leader at a time; a dead leader's lease frees itself."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import pytest

from services.supervisor.leadership import PostgresAdvisoryLease
from tests.conftest import StackInfo

pytestmark = pytest.mark.integration


@pytest.fixture
def key() -> int:
    """A lock key no other test uses."""
    return random.randrange(1, 2**62)


async def test_second_supervisor_waits_until_the_leader_stops(
    stack_info: StackInfo, key: int
) -> None:
    """While one lease holds the lock another cannot take it; once released, it can."""
    stop = asyncio.Event()
    async with (
        PostgresAdvisoryLease(stack_info.database_url, key=key, retry_s=0.05) as first,
        PostgresAdvisoryLease(stack_info.database_url, key=key, retry_s=0.05) as second,
    ):
        assert await first.acquire(stop)
        assert await first.held()
        other = await asyncpg.connect(stack_info.database_url)
        try:
            assert not await other.fetchval("SELECT pg_try_advisory_lock($1)", key)
        finally:
            await other.close()
        contender = asyncio.create_task(second.acquire(stop))
        await first.stop()
        assert await asyncio.wait_for(contender, 10)
        assert await second.held()
        assert not await first.held()


async def test_acquire_gives_up_when_stopping(stack_info: StackInfo, key: int) -> None:
    """A contender stops waiting (returns False) when its supervisor shuts down."""
    stop = asyncio.Event()
    async with (
        PostgresAdvisoryLease(stack_info.database_url, key=key, retry_s=0.05) as leader,
        PostgresAdvisoryLease(stack_info.database_url, key=key, retry_s=0.05) as contender,
    ):
        assert await leader.acquire(stop)
        waiting = asyncio.create_task(contender.acquire(stop))
        stop.set()
        assert await asyncio.wait_for(waiting, 10) is False


async def test_killed_leader_session_frees_the_lease(stack_info: StackInfo, key: int) -> None:
    """When the leader's database session dies, it no longer holds, and another can lead."""
    stop = asyncio.Event()
    async with (
        PostgresAdvisoryLease(stack_info.database_url, key=key, retry_s=0.05) as leader,
        PostgresAdvisoryLease(stack_info.database_url, key=key, retry_s=0.05) as follower,
    ):
        assert await leader.acquire(stop)
        admin = await asyncpg.connect(stack_info.database_url)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks"
                " WHERE locktype = 'advisory' AND granted"
                " AND ((classid::bigint << 32) | objid::bigint) = $1",
                key,
            )
        finally:
            await admin.close()
        assert await asyncio.wait_for(follower.acquire(stop), 10)
        assert not await leader.held()
