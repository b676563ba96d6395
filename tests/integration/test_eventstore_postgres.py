"""PostgresEventStore: the shared contract, commit-order reads under slow commits, and the
schema's own guarantees (append-only trigger, concurrent start)."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from shared.eventstore import EventStore, NewEvent, PostgresEventStore, Tracking
from tests.conftest import StackInfo
from tests.contracts.eventstore import (
    EventStoreContract,
    StoreFactory,
    chained_hash,
    follow_while,
)

pytestmark = pytest.mark.integration


async def _sql(dsn: str, query: str, *args: Any) -> Any:
    """Run one statement on a connection of its own, as another client would."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


class TestPostgresEventStore(EventStoreContract):
    """Runs the event store contract, and Postgres-only checks, on a fresh schema per test."""

    @pytest.fixture
    async def make_store(self, stack_info: StackInfo) -> AsyncIterator[StoreFactory]:
        """Stores on one fresh schema ``t_<hex>``, dropped afterwards (test data only)."""
        dsn, schema = stack_info.database_url, f"t_{uuid4().hex}"
        stores: list[PostgresEventStore] = []

        async def factory() -> EventStore:
            store = PostgresEventStore(dsn, schema=schema, pool_max=12)
            stores.append(store)
            await store.start()
            return store

        yield factory
        for store in stores:
            await store.stop()
        await _sql(dsn, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    async def test_follower_never_skips_a_slow_commit(
        self, store: EventStore, stack_info: StackInfo
    ) -> None:
        """Writers that hold their transaction open after drawing positions cannot make a
        follower skip their events: it sees every event once, in position order."""
        assert isinstance(store, PostgresEventStore)
        rng = random.Random(11)

        async def slow_writer(w: int) -> None:
            conn = await asyncpg.connect(stack_info.database_url)
            try:
                for version in range(25):
                    async with conn.transaction():
                        # The private hook appends inside our transaction: positions are
                        # drawn now, the commit comes after the sleep.
                        await store._append_with(
                            conn, f"slow-{w}", [NewEvent("S", {})], version, None
                        )
                        await asyncio.sleep(rng.uniform(0, 0.003))  # commit late
            finally:
                await conn.close()

        async def fast_writer(w: int) -> None:
            for version in range(0, 50, 2):
                await store.append(f"fast-{w}", [NewEvent("F", {}), NewEvent("F", {})], version)

        writers = [slow_writer(w) for w in range(4)] + [fast_writer(w) for w in range(4)]
        seen = await follow_while(store, asyncio.gather(*writers), batch=3)
        positions = [e.position for e in seen]
        assert all(a < b for a, b in itertools.pairwise(positions))
        assert len({e.event_id for e in seen}) == len(seen) == 4 * 25 + 4 * 50
        assert seen == await store.read_all(limit=10_000)

    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE {s}.events SET type = 'Forged'",
            "DELETE FROM {s}.events",
            "DELETE FROM {s}.events WHERE false",
            "TRUNCATE {s}.events",
        ],
    )
    async def test_events_table_is_append_only(
        self, store: EventStore, stack_info: StackInfo, statement: str
    ) -> None:
        """UPDATE, DELETE and TRUNCATE on the events table are refused by the database."""
        assert isinstance(store, PostgresEventStore)
        await store.append("wf-1", [NewEvent("A", {})], 0)
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await _sql(stack_info.database_url, statement.format(s=f'"{store.schema}"'))
        assert [e.type for e in await store.read_all()] == ["A"]

    async def test_concurrent_starts_share_one_schema(self, make_store: StoreFactory) -> None:
        """Stores starting at once on a new schema all succeed and see the same data."""
        a, b, c = await asyncio.gather(make_store(), make_store(), make_store())
        await a.append("wf-1", [NewEvent("A", {})], 0, tracking=Tracking("x", "k"))
        await a.stop()
        assert [e.type for e in await b.read("wf-1")] == ["A"]
        assert await c.is_processed(Tracking("x", "k"))

    async def test_starting_next_to_a_live_appender_touches_no_lock(
        self, store: EventStore, make_store: StoreFactory, stack_info: StackInfo
    ) -> None:
        """A second process starting while a writer holds a lock on the events table neither
        waits nor deadlocks: an installed schema is not re-run (it was, and it deadlocked)."""
        assert isinstance(store, PostgresEventStore)
        writer = await asyncpg.connect(stack_info.database_url)
        try:
            async with writer.transaction():
                await writer.execute(f'LOCK TABLE "{store.schema}".events IN EXCLUSIVE MODE')
                late = await asyncio.wait_for(make_store(), 10)
        finally:
            await writer.close()
        await late.append("wf-late", [NewEvent("A", {})], 0)
        assert [e.type for e in await store.read("wf-late")] == ["A"]

    async def test_tracking_points_at_the_last_event(
        self, store: EventStore, stack_info: StackInfo
    ) -> None:
        """The tracking row stores the position of the last event its append wrote."""
        assert isinstance(store, PostgresEventStore)
        events = [NewEvent("A", {}), NewEvent("B", {})]
        recorded = await store.append("wf-1", events, 0, tracking=Tracking("c", "k"))
        query = f'SELECT position FROM "{store.schema}".tracking WHERE consumer = $1 AND key = $2'
        assert await _sql(stack_info.database_url, query, "c", "k") == recorded[-1].position

    async def test_a_rolled_back_append_leaves_the_chain_as_it_was(
        self, store: EventStore, stack_info: StackInfo
    ) -> None:
        """The hash and the head's last hash are written in the append's own transaction: a
        rollback undoes both, and the next append chains from the head before it."""
        assert isinstance(store, PostgresEventStore)
        [first] = await store.append("wf-1", [NewEvent("A", {})], 0)
        conn = await asyncpg.connect(stack_info.database_url)
        try:
            transaction = conn.transaction()
            await transaction.start()
            await store._append_with(conn, "wf-1", [NewEvent("B", {})], 1, None)
            await transaction.rollback()
        finally:
            await conn.close()
        head = await store.stream_head("wf-1")
        assert head is not None
        assert (head.version, head.last_hash) == (1, first.hash)
        [second] = await store.append("wf-1", [NewEvent("C", {})], 1)
        assert second.hash == chained_hash(first.hash or "", second)


def test_schema_name_must_be_a_plain_identifier() -> None:
    """A schema name that is not a plain SQL identifier is refused before any I/O."""
    for bad in ('x"; DROP SCHEMA public; --', "1abc", "a-b", "x" * 64, ""):
        with pytest.raises(ValueError, match="schema"):
            PostgresEventStore("postgresql://unused", schema=bad)


async def test_a_store_must_be_started() -> None:
    """Using a store before start() raises instead of connecting lazily."""
    with pytest.raises(RuntimeError, match="not started"):
        await PostgresEventStore("postgresql://unused").read_all()
