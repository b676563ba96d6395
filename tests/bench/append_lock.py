"""How concurrent appenders fare under the append's lock, and under the table lock it replaced.

``append_events`` holds a shared advisory lock and ``settled_position`` the same key
exclusively for one lookup (schema.sql): appends run side by side, and the global feed waits
for those in flight before it reads up to the settled position. Before, each append locked
the events table (EXCLUSIVE), so appends ran one at a time, each waiting for the previous
one's commit. The second variant puts that lock back in a scratch schema (never shipped) to
compare. Each of ``writers`` tasks appends single events to a stream of its own through one
pool, while a follower pages through ``read_all`` as the outbox relay does (so the new design
pays for its readers too); rounds alternate the variants so a burst of load on a shared
machine skews one round, not one variant.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid

import asyncpg

from shared.eventstore import NewEvent, PostgresEventStore
from shared.eventstore.postgres import _schema_sql

__all__ = ["bench_append_lock"]

_ROUNDS = 3
_SHARED = (
    "PERFORM pg_advisory_xact_lock_shared(\n"
    "            hashtextextended('agentlog.eventstore.appending:{schema}', 0));"
)


async def _table_locked(dsn: str, schema: str) -> None:
    """Replace the schema's append_events by a copy that locks the table, as before."""
    sql = _schema_sql(f'"{schema}"')
    start = sql.index(f'CREATE OR REPLACE FUNCTION "{schema}".append_events')
    function = sql[start : sql.index("$$;", start) + 3]
    shared = _SHARED.format(schema=f'"{schema}"')
    assert shared in function, "append_events no longer takes the lock this bench replaces"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            function.replace(shared, f'LOCK TABLE "{schema}".events IN EXCLUSIVE MODE;')
        )
    finally:
        await conn.close()


async def _follow(store: PostgresEventStore, stop: asyncio.Event) -> int:
    """Page through read_all until ``stop``, like the relay; how many events it read."""
    position = seen = 0
    while not stop.is_set():
        page = await store.read_all(position, 200)
        if page:
            position, seen = page[-1].position, seen + len(page)
        else:
            await asyncio.sleep(0.001)
    return seen


async def _events_per_s(dsn: str, writers: int, appends: int, *, table_lock: bool) -> float:
    schema = f"bench_lock_{uuid.uuid4().hex[:12]}"
    store = PostgresEventStore(dsn, schema=schema, pool_min=writers + 1, pool_max=writers + 1)
    try:
        await store.start()
        if table_lock:
            await _table_locked(dsn, schema)

        async def write(stream: str) -> None:
            for version in range(appends):
                event = NewEvent("Noted", {"n": version, "text": "lorem ipsum " * 16})
                await store.append(stream, [event], version)

        stop = asyncio.Event()
        follower = asyncio.create_task(_follow(store, stop))
        started = time.perf_counter()
        await asyncio.gather(*(write(f"wf-{i}") for i in range(writers)))
        elapsed = time.perf_counter() - started
        stop.set()
        await follower
        return writers * appends / elapsed
    finally:
        with contextlib.suppress(Exception):
            await store.stop()
        # Benchmark scratch schemas only; product code never deletes events.
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


async def bench_append_lock(dsn: str, total: int = 1200) -> dict[str, float]:
    """Events/s at 1, 4 and 16 concurrent appenders (and a follower) under the shipped lock
    and under the table lock, and their ratio (above 1: the shipped design is faster)."""
    result: dict[str, float] = {}
    for writers in (1, 4, 16):
        rates: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(_ROUNDS):
            for table_lock in (False, True):
                rate = await _events_per_s(dsn, writers, total // writers, table_lock=table_lock)
                rates[table_lock].append(rate)
        shipped, table = statistics.median(rates[False]), statistics.median(rates[True])
        result[f"shared_lock_{writers}_writers_eps"] = shipped
        result[f"table_lock_{writers}_writers_eps"] = table
        result[f"shared_over_table_{writers}"] = shipped / table
    return result
