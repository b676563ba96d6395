"""Export and verify throughput (events/s) next to a raw asyncpg SELECT of the same rows.

20,000 events across 200 streams, appended through the store in batches of 50. Export writes
the whole bundle to a file; verify checks the chains in the database and then in that file
(offline). The baseline pages through the same rows by position with plain asyncpg, decoding
nothing, so each ratio is the price of hashing, JSON and the per-stream reads.
Run: ``python -m tests.bench.audit [DSN]``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from uuid import uuid4

import asyncpg

from shared.eventstore import NewEvent, PostgresEventStore
from shared.readside.audit import export_bundle, verify_bundle, verify_store

__all__ = ["bench_export_verify"]

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
BATCH = 50


def _event(stream: int, i: int) -> NewEvent:
    """A typical small event, as in the append bench."""
    return NewEvent(
        type="DraftWritten",
        data={"task_id": f"task-{i}", "revision": i % 4, "text": "lorem ipsum " * 16},
        metadata={"causation_id": str(uuid4()), "correlation_id": f"wf-{stream}", "actor": "w"},
    )


async def _fill(store: PostgresEventStore, streams: int, per_stream: int) -> None:
    async def one(s: int) -> None:
        for first in range(0, per_stream, BATCH):
            batch = [_event(s, first + i) for i in range(min(BATCH, per_stream - first))]
            await store.append(f"wf-bench-{s:04d}", batch, first)

    for start in range(0, streams, 10):  # ten writers at a time
        await asyncio.gather(*(one(s) for s in range(start, min(start + 10, streams))))


async def bench_export_verify(
    dsn: str, streams: int = 200, per_stream: int = 100, *, rounds: int = 3
) -> dict[str, float]:
    """Events/s of export, of verify in the database and of verify from the file, next to
    raw SELECT; the median of ``rounds`` interleaved rounds of each."""
    n = streams * per_stream
    schema = f"bench_audit_{uuid4().hex}"
    store = PostgresEventStore(dsn, schema=schema, pool_max=10)
    conn = await asyncpg.connect(dsn)
    select = (
        f"SELECT position, stream_id, version, type, schema_version, event_id, data, metadata,"
        f' recorded_at, hash FROM "{schema}".events WHERE position > $1 ORDER BY position'
        " LIMIT 1000"
    )
    with tempfile.TemporaryDirectory(prefix="agentlog-bench-audit-") as tmp:
        bundle = Path(tmp) / "bundle.jsonl"

        async def raw() -> None:
            last, seen = 0, 0
            while rows := await conn.fetch(select, last):
                last, seen = rows[-1]["position"], seen + len(rows)
            assert seen == n

        async def export() -> None:
            with bundle.open("w", encoding="utf-8") as out:
                async for line in export_bundle(store):
                    out.write(line)

        async def verify_db() -> None:
            result = await verify_store(store)
            assert result.ok, result
            assert result.events_checked == n

        async def verify_file() -> None:
            with bundle.open("rb") as lines:
                result = verify_bundle(lines)
            assert result.ok, result
            assert result.events_checked == n

        kinds: dict[str, Callable[[], Awaitable[None]]] = {
            "raw_select_eps": raw,
            "export_eps": export,
            "verify_db_eps": verify_db,
            "verify_file_eps": verify_file,
        }
        rates: dict[str, list[float]] = {name: [] for name in kinds}
        try:
            await store.start()
            await _fill(store, streams, per_stream)
            for _ in range(rounds):
                for name, run in kinds.items():
                    start = time.perf_counter()
                    await run()
                    rates[name].append(n / (time.perf_counter() - start))
            size = bundle.stat().st_size
        finally:
            # Benchmark scratch schema only; product code never deletes events.
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()
            await store.stop()
    result = {name: statistics.median(values) for name, values in rates.items()}
    raw_eps = result["raw_select_eps"]
    result |= {
        "export_ratio": result["export_eps"] / raw_eps,
        "verify_db_ratio": result["verify_db_eps"] / raw_eps,
        "verify_file_ratio": result["verify_file_eps"] / raw_eps,
        "bundle_bytes_per_event": size / n,
        "events": n,
    }
    return result


if __name__ == "__main__":
    dsn = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AGENTLOG_DATABASE_URL", DEFAULT_DSN)
    for name, value in asyncio.run(bench_export_verify(dsn)).items():
        print(f"{name:>24}  {value:>10.2f}" if "ratio" in name else f"{name:>24}  {value:>10.0f}")
