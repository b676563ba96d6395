"""What the comparison measures around a batch of workflows: CPU per process, bytes stored and
transactions committed in Postgres, and the latency and rate of the batch itself.

Needs no ``bench`` extra (asyncpg and psutil only), so agentlog's runs use it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg
import psutil

__all__ = [
    "Batch",
    "CpuProbe",
    "RunOne",
    "Storage",
    "machine",
    "run_batch",
    "transactions",
]


@dataclass(frozen=True)
class _Watched:
    pid: int
    #: Count the CPU of its children too (live, and exited ones it reaped): Postgres backends.
    children: bool


def _cpu_seconds(watched: _Watched) -> float:
    try:
        root = psutil.Process(watched.pid)
        if not watched.children:
            times = root.cpu_times()
            return times.user + times.system
        total = 0.0
        # A reaped child's time (and its own reaped children's) is in its parent's children_*
        # fields, and it is no longer live: each CPU second is counted once.
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):  # a backend that exited meanwhile
                times = proc.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
        return total
    except psutil.NoSuchProcess:
        return 0.0


class CpuProbe:
    """CPU seconds (user + system) of named processes between ``start`` and ``stop``.

    A process with ``children=True`` counts its descendants: the Postgres postmaster's live
    backends plus the ones that exited (the kernel adds a reaped child's time to its parent).
    """

    def __init__(self, processes: Mapping[str, tuple[int, bool]]) -> None:
        self._watched = {name: _Watched(pid, kids) for name, (pid, kids) in processes.items()}
        self._started: dict[str, float] = {}
        self.used_s: dict[str, float] = {}

    def start(self) -> None:
        """Take the first reading."""
        self._started = {name: _cpu_seconds(w) for name, w in self._watched.items()}

    def stop(self) -> dict[str, float]:
        """Seconds used by each process since ``start``."""
        self.used_s = {
            name: max(0.0, _cpu_seconds(w) - self._started[name])
            for name, w in self._watched.items()
        }
        return self.used_s


@dataclass(frozen=True)
class Storage:
    """The relations one system writes: the tables of ``schemas`` in ``database`` (with their
    indexes and TOAST), except those named in ``exclude`` (e.g. the search index)."""

    database: str
    schemas: tuple[str, ...]
    exclude: tuple[str, ...] = ()

    async def bytes(self, server_url: str) -> int:
        """Their total size on disk now (``pg_total_relation_size``)."""
        conn = await asyncpg.connect(_on(server_url, self.database))
        try:
            size = await conn.fetchval(
                """
                SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname = ANY($1::text[])
                  AND NOT c.relname = ANY($2::text[])
                """,
                list(self.schemas),
                list(self.exclude),
            )
        finally:
            await conn.close()
        return int(size)


async def transactions(server_url: str) -> int:
    """Transactions committed or rolled back in every database of the server, so far.

    Backends report their counts when idle (at most a second late), so callers wait a moment
    after the work before reading.
    """
    conn = await asyncpg.connect(server_url)
    try:
        count = await conn.fetchval(
            "SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database"
            " WHERE datname IS NOT NULL"
        )
    finally:
        await conn.close()
    return int(count)


def _on(server_url: str, database: str) -> str:
    return f"{server_url.rsplit('/', 1)[0]}/{database}"


@dataclass
class Batch:
    """``workflows`` run with ``in_flight`` at a time: their latencies and the wall time."""

    workflows: int
    in_flight: int
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    reports: set[str] = field(default_factory=set)

    def summary(self) -> dict[str, object]:
        """The rate and latency numbers of the batch."""
        cuts = statistics.quantiles(self.latencies_s, n=20) if len(self.latencies_s) > 1 else []
        return {
            "workflows": self.workflows,
            "in_flight": self.in_flight,
            "elapsed_s": round(self.elapsed_s, 3),
            "workflows_per_s": round(self.workflows / self.elapsed_s, 2),
            "latency_ms": {
                "p50": round(statistics.median(self.latencies_s) * 1000, 1),
                "p95": round((cuts[18] if cuts else self.latencies_s[0]) * 1000, 1),
            },
            "outcomes": dict(self.outcomes),
        }


#: Runs one workflow to its end: (outcome, report) from its id.
RunOne = Callable[[str], Awaitable[tuple[str, str | None]]]


async def run_batch(run_one: RunOne, prefix: str, workflows: int, in_flight: int) -> Batch:
    """Run ``workflows`` workflows, ``in_flight`` at a time; each latency is start → end."""
    batch = Batch(workflows, in_flight)
    gate = asyncio.Semaphore(in_flight)

    async def one(i: int) -> None:
        async with gate:
            started = time.perf_counter()
            outcome, report = await run_one(f"wf-{prefix}-{i:05d}")
            batch.latencies_s.append(time.perf_counter() - started)
            batch.outcomes[outcome] = batch.outcomes.get(outcome, 0) + 1
            if report is not None:
                batch.reports.add(report)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(workflows)))
    batch.elapsed_s = time.perf_counter() - started
    return batch


def machine(extra: Sequence[tuple[str, str]] = ()) -> dict[str, object]:
    """The machine the numbers come from."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": psutil.cpu_count(logical=True),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        **dict(extra),
    }
