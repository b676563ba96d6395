"""What the append's table lock costs concurrent appenders: the store as shipped next to the
same store with the ``LOCK TABLE`` line taken out of ``append_events``.

The lock is what keeps ``read_all`` gap-free (schema.sql); without it a follower can skip an
event, so the second variant exists only here, in a scratch schema, to price the guarantee.
Each of ``writers`` tasks appends single events to a stream of its own through one pool (as
many connections as writers); rounds alternate the variants so a burst of load on a shared
machine skews one round, not one variant.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import asyncpg

from shared.eventstore import NewEvent, PostgresEventStore
from shared.eventstore.postgres import _schema_sql

__all__ = ["bench_append_lock"]

_ROUNDS = 3


async def _unlocked(dsn: str, schema: str) -> None:
    """Replace the schema's append_events by a copy without its table lock."""
    sql = _schema_sql(f'"{schema}"')
    function = sql[sql.index(f'CREATE OR REPLACE FUNCTION "{schema}".append_events') :]
    lock = f'LOCK TABLE "{schema}".events IN EXCLUSIVE MODE;'
    assert lock in function, "append_events no longer takes the lock this bench removes"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(function.replace(lock, "NULL;"))
    finally:
        await conn.close()


async def _events_per_s(dsn: str, writers: int, appends: int, *, locked: bool) -> float:
    schema = f"bench_lock_{uuid.uuid4().hex[:12]}"
    store = PostgresEventStore(dsn, schema=schema, pool_min=writers, pool_max=writers)
    try:
        await store.start()
        if not locked:
            await _unlocked(dsn, schema)

        async def write(stream: str) -> None:
            for version in range(appends):
                event = NewEvent("Noted", {"n": version, "text": "lorem ipsum " * 16})
                await store.append(stream, [event], version)

        started = time.perf_counter()
        await asyncio.gather(*(write(f"wf-{i}") for i in range(writers)))
        return writers * appends / (time.perf_counter() - started)
    finally:
        await store.stop()
        # Benchmark scratch schemas only; product code never deletes events.
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


async def bench_append_lock(dsn: str, total: int = 1200) -> dict[str, float]:
    """Events/s with and without the lock at 1, 4 and 16 concurrent appenders, and ratios."""
    result: dict[str, float] = {}
    for writers in (1, 4, 16):
        rates: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(_ROUNDS):
            for locked in (True, False):
                rate = await _events_per_s(dsn, writers, total // writers, locked=locked)
                rates[locked].append(rate)
        with_lock, without = statistics.median(rates[True]), statistics.median(rates[False])
        result[f"locked_{writers}_writers_eps"] = with_lock
        result[f"unlocked_{writers}_writers_eps"] = without
        result[f"locked_over_unlocked_{writers}"] = with_lock / without
    return result
