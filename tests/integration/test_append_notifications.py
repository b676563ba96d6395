"""Wake-ups on appends from any process: Postgres LISTEN/NOTIFY (shared/eventstore/
notifications.py) on the real server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from uuid import uuid4

import asyncpg
import pytest

from shared.eventstore import ConcurrencyConflictError, NewEvent, PostgresEventStore
from shared.eventstore.notifications import APPLICATION_NAME, AppendNotifications
from tests.conftest import StackInfo

pytestmark = pytest.mark.integration

_WAIT_S = 10.0


@pytest.fixture
async def schemas(stack_info: StackInfo) -> AsyncIterator[tuple[str, str]]:
    """Two fresh schemas, dropped afterwards."""
    names = (f"t_{uuid4().hex}", f"t_{uuid4().hex}")
    yield names
    conn = await asyncpg.connect(stack_info.database_url)
    try:
        for name in names:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


async def _woken(wakes: asyncio.Queue[int | None]) -> int | None:
    return await asyncio.wait_for(wakes.get(), _WAIT_S)


async def test_a_listener_is_woken_by_another_writers_commit_and_only_for_its_schema(
    stack_info: StackInfo, schemas: tuple[str, str]
) -> None:
    """An append through another pool wakes the listener of its schema once it commits, with
    the position it reached; an append to another schema, a refused append, or one by the
    session name the listener ignores (its own process's pool) does not."""
    mine, other = schemas
    wakes: asyncio.Queue[int | None] = asyncio.Queue()
    listener = AppendNotifications(
        stack_info.database_url, wakes.put_nowait, schema=mine, ignore="me", check_s=0.2
    )
    stop = asyncio.Event()
    async with (
        PostgresEventStore(stack_info.database_url, schema=mine) as writer,
        PostgresEventStore(stack_info.database_url, schema=mine, application_name="me") as own,
        PostgresEventStore(stack_info.database_url, schema=other) as elsewhere,
    ):
        task = asyncio.create_task(listener.run(stop))
        try:
            assert await _woken(wakes) is None  # the wake-up every (re)connect gives
            await elsewhere.append("wf-other", [NewEvent("Noted", {"n": 1})], 0)
            recorded = await writer.append(
                "wf-n", [NewEvent("Noted", {"n": 1}), NewEvent("Noted", {"n": 2})], 0
            )
            assert await _woken(wakes) == recorded[-1].position
            with pytest.raises(ConcurrencyConflictError):
                await writer.append("wf-n", [NewEvent("Noted", {"n": 2})], 0)
            await own.append("wf-own", [NewEvent("Noted", {"n": 1})], 0)
            await asyncio.sleep(0.5)
            assert wakes.empty()  # not the other schema's, the refused, nor its own process's
            later = await writer.append("wf-n", [NewEvent("Noted", {"n": 3})], 2)
            assert await _woken(wakes) == later[-1].position
        finally:
            stop.set()
            await task


async def test_a_lost_listening_connection_is_reopened_and_wakes_again(
    stack_info: StackInfo, schemas: tuple[str, str]
) -> None:
    """When the server ends the listening session, the listener reconnects, wakes the follower
    (notifications sent meanwhile are gone), and is woken by later appends."""
    mine, _ = schemas
    wakes: asyncio.Queue[int | None] = asyncio.Queue()
    listener = AppendNotifications(
        stack_info.database_url,
        wakes.put_nowait,
        schema=mine,
        check_s=0.1,
        retry_s=0.1,
    )
    stop = asyncio.Event()
    async with PostgresEventStore(stack_info.database_url, schema=mine) as writer:
        task = asyncio.create_task(listener.run(stop))
        try:
            assert await _woken(wakes) is None
            admin = await asyncpg.connect(stack_info.database_url)
            try:
                ended = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = $1",
                    APPLICATION_NAME,
                )
            finally:
                await admin.close()
            assert ended >= 1
            assert await _woken(wakes) is None  # the reconnect's wake-up
            assert listener.connects == 2
            recorded = await writer.append("wf-r", [NewEvent("Noted", {"n": 1})], 0)
            assert await _woken(wakes) == recorded[-1].position
        finally:
            stop.set()
            await task


async def _listening_sessions(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", APPLICATION_NAME
    )
    return count


async def test_a_stores_watches_share_one_listening_session(
    stack_info: StackInfo, schemas: tuple[str, str]
) -> None:
    """Watches of many streams through one store hold one extra session, closed with the last,
    and each is woken by appends to its own stream (from another store) only."""
    mine, _ = schemas
    conn = await asyncpg.connect(stack_info.database_url)
    try:
        before = await _listening_sessions(conn)
        async with (
            PostgresEventStore(stack_info.database_url, schema=mine, pool_max=1) as reader,
            PostgresEventStore(stack_info.database_url, schema=mine, pool_max=1) as writer,
            contextlib.AsyncExitStack() as watches,
        ):
            events = [await watches.enter_async_context(reader.watch(f"wf-{i}")) for i in range(5)]
            assert await _listening_sessions(conn) == before + 1
            for appended in events:
                appended.clear()
            await writer.append("wf-3", [NewEvent("Noted", {"n": 1})], 0)
            await asyncio.wait_for(events[3].wait(), _WAIT_S)
            assert [e.is_set() for e in events] == [False, False, False, True, False]
        # The last watch closed the session (pg_stat_activity may show it a moment longer).
        for _ in range(int(_WAIT_S / 0.05)):
            if await _listening_sessions(conn) == before:
                break
            await asyncio.sleep(0.05)
        assert await _listening_sessions(conn) == before
    finally:
        await conn.close()
