"""Append throughput of PostgresEventStore next to raw asyncpg INSERTs into a same-shaped table.

The raw baseline does what any event table needs at minimum (identity, both unique
constraints, JSON encoding) but no concurrency control, tracking or stream heads, so the ratio
is the price of the store's guarantees. Run: ``python -m tests.bench.eventstore [DSN] [N]``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import uuid4

import asyncpg

from shared.eventstore import NewEvent, PostgresEventStore

__all__ = ["bench_append"]

BATCH = 50
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"

_RAW_TABLE = """
CREATE TABLE {t} (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id text NOT NULL, version integer NOT NULL, type text NOT NULL,
    schema_version integer NOT NULL, event_id text NOT NULL UNIQUE,
    data json NOT NULL, metadata json NOT NULL, recorded_at timestamptz NOT NULL,
    UNIQUE (stream_id, version))
"""
_RAW_INSERT = (
    "INSERT INTO {t} (stream_id, version, type, schema_version, event_id, data, metadata,"
    " recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp())"
)


def _event(i: int) -> NewEvent:
    """A typical small event: a few ids and a short text."""
    return NewEvent(
        type="DraftWritten",
        data={"task_id": f"task-{i}", "revision": i % 4, "text": "lorem ipsum " * 16},
        metadata={"causation_id": str(uuid4()), "correlation_id": "wf-bench", "actor": "writer"},
    )


def _row(stream: str, version: int, e: NewEvent) -> tuple[Any, ...]:
    data, metadata = json.dumps(e.data), json.dumps(e.metadata)
    return (stream, version, e.type, e.schema_version, e.event_id, data, metadata)


async def _rate(n: int, run: Awaitable[None]) -> float:
    """Events per second of ``run``, which writes ``n`` events."""
    start = time.perf_counter()
    await run
    return n / (time.perf_counter() - start)


async def bench_append(dsn: str, n: int = 5000, *, rounds: int = 5) -> dict[str, float]:
    """Events/s of the store and of raw INSERTs, single-event and in batches of 50, and ratios.

    Each kind writes ``n`` events in ``rounds`` interleaved rounds and reports its median
    round, so a burst of load on a shared machine skews one round rather than one kind.
    """
    per_round = max(BATCH, n // rounds // BATCH * BATCH)
    suffix = uuid4().hex
    store = PostgresEventStore(dsn, schema=f"bench_{suffix}", pool_max=2)
    conn = await asyncpg.connect(dsn)
    raw = f'"bench_raw_{suffix}".events'
    insert = _RAW_INSERT.format(t=raw)

    async def store_single(first: int) -> None:
        for v in range(first, first + per_round):
            await store.append("single", [_event(v)], v)

    async def store_batched(first: int) -> None:
        for b in range(first, first + per_round, BATCH):
            await store.append("batched", [_event(b + i) for i in range(BATCH)], b)

    async def raw_single(first: int) -> None:
        for v in range(first, first + per_round):  # autocommit: one transaction per INSERT
            await conn.execute(insert, *_row("single", v + 1, _event(v)))

    async def raw_batched(first: int) -> None:
        for b in range(first, first + per_round, BATCH):
            rows = [_row("batched", b + i + 1, _event(b + i)) for i in range(BATCH)]
            async with conn.transaction():
                await conn.executemany(insert, rows)

    kinds: dict[str, Callable[[int], Awaitable[None]]] = {
        "store_single_eps": store_single,
        "raw_single_eps": raw_single,
        "store_batch50_eps": store_batched,
        "raw_batch50_eps": raw_batched,
    }
    rates: dict[str, list[float]] = {name: [] for name in kinds}
    try:
        await store.start()
        await conn.execute(f'CREATE SCHEMA "bench_raw_{suffix}"; {_RAW_TABLE.format(t=raw)}')
        # Warm up: prepared statements, the pool's connection, the server's caches.
        await store.append("warmup", [_event(0)], 0)
        await conn.execute(insert, *_row("warmup", 1, _event(0)))
        for r in range(rounds):
            for name, write in kinds.items():
                rates[name].append(await _rate(per_round, write(r * per_round)))
    finally:
        # Benchmark scratch schemas only; product code never deletes events.
        await conn.execute(
            f'DROP SCHEMA IF EXISTS "bench_{suffix}" CASCADE;'
            f' DROP SCHEMA IF EXISTS "bench_raw_{suffix}" CASCADE'
        )
        await conn.close()
        await store.stop()
    result = {name: statistics.median(values) for name, values in rates.items()}
    result["single_ratio"] = result["store_single_eps"] / result["raw_single_eps"]
    result["batch50_ratio"] = result["store_batch50_eps"] / result["raw_batch50_eps"]
    return result


if __name__ == "__main__":
    dsn = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AGENTLOG_DATABASE_URL", DEFAULT_DSN)
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    for name, value in asyncio.run(bench_append(dsn, count)).items():
        print(f"{name:>18}  {value:>10.2f}" if "ratio" in name else f"{name:>18}  {value:>10.0f}")
