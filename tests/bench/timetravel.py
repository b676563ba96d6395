"""Time travel's costs: state at an event, and rollback latency.

State at an event: read a stream up to a version and fold it (what `agentlog state --at` does),
for workflows of 10, 100 and 1,000 events, next to a raw SQL read of the same rows (the floor:
the fold's share is the ratio). The 1,000-event workflow is rollback-heavy (a rollback every
few events), the worst case for the fold. Its goal (issue 10) is under 20 ms:
``state_at_1000_goal_ratio`` is the measured p50 over 20 ms (below 1 meets it), and the
``state_at_1000_{read,decode,fold}_ms`` p50s say where the time goes.

Rollback latency: a signed rollback control message published → the writer's new task on
``agentlog.tasks.writer``, with the five services running; each rollback's run completes before
the next rollback.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from schemas.events import PassagesRetrieved
from schemas.messages import CompletionEvent, GoalSubmitted, RollbackWorkflow, WriteTask
from schemas.topics import COMPLETIONS, CONTROL, GOALS, task_topic
from shared.domain import replay_versioned
from shared.eventstore import NewEvent
from shared.eventstore.postgres import PostgresEventStore
from shared.runtime.codec import decode_history
from shared.runtime.gc_tuning import tune_gc
from shared.runtime.processes import ServiceProcesses
from shared.runtime.wiring import kafka_bus
from shared.settings import Settings
from shared.transport import Delivery, Subscription

__all__ = ["bench_rollback_latency", "bench_state_at"]

_REPEAT = 30
_GOAL_1000_MS = 20.0


def _synthetic_stream(n: int) -> list[NewEvent]:
    """A valid history of ``n`` events: start, search, then write/critique with rollbacks."""
    t0 = datetime(2026, 11, 30, tzinfo=UTC)
    prov = {"provider": "bench", "model": "m", "strategy_version": "1"}
    passages = [
        {"source_id": f"d{i}#1", "title": f"D{i}", "text": "replay folds events " * 30}
        for i in range(8)
    ]

    def task(version: int, agent: str) -> dict[str, object]:
        return {
            "task_id": f"{agent}-v{version}",
            "agent": agent,
            "attempt": 1,
            "deadline": (t0 + timedelta(seconds=30)).isoformat(),
            "command_type": f"agentlog.task.{agent}.v1",
            "command": {},
        }

    events: list[NewEvent] = [
        NewEvent(
            "WorkflowStarted",
            {"goal": "Explain replay", "constraints": [], "started_at": t0.isoformat()},
        ),
        NewEvent("TaskScheduled", task(2, "search")),
        NewEvent(
            "PassagesRetrieved", {"task_id": "search-v2", "passages": passages, "provenance": prov}
        ),
    ]
    while len(events) < n:
        version = len(events) + 1
        kind = (version - 4) % 5
        if kind == 0:
            events.append(NewEvent("TaskScheduled", task(version, "writer")))
        elif kind == 1:
            draft = {"task_id": f"writer-v{version - 1}", "revision": 0, "draft": "# R " * 200}
            events.append(NewEvent("DraftWritten", {**draft, "provenance": prov}))
        elif kind == 2:
            events.append(NewEvent("TaskScheduled", task(version, "critic")))
        elif kind == 3:
            verdict = {"task_id": f"critic-v{version - 1}", "revision": 0, "verdict": "revise"}
            events.append(NewEvent("CritiqueIssued", {**verdict, "score": 0.5, "provenance": prov}))
        else:
            rolled = {"to_version": 3, "reason": "again", "rolled_back_at": t0.isoformat()}
            events.append(NewEvent("WorkflowRolledBack", rolled))
    return events[:n]


@contextlib.contextmanager
def _as_agentlog_process() -> Iterator[None]:
    """The collector set as an agentlog process sets it (``agentlog state`` runs the same read
    and fold), then back as it was: the benchmarks after this one, the peers' included, run
    with Python's defaults."""
    thresholds = gc.get_threshold()
    tune_gc()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


async def bench_state_at(database_url: str) -> dict[str, float]:
    """Milliseconds (p50) to rebuild the state at the last event, and the raw read's."""
    with _as_agentlog_process():
        return await _state_at(database_url)


async def _state_at(database_url: str) -> dict[str, float]:
    result: dict[str, float] = {}
    # A scratch schema: the synthetic streams' tasks carry no real command, and in the
    # product's schema the outbox relay of the benchmarks that follow would try to publish them.
    schema = f"bench_state_{uuid.uuid4().hex[:12]}"
    async with PostgresEventStore(database_url, schema=schema, pool_max=2) as store:
        conn = await asyncpg.connect(database_url)
        try:
            for n in (10, 100, 1000):
                stream = f"wf-bench-state-{n}-{uuid.uuid4().hex[:6]}"
                events = _synthetic_stream(n)
                for start in range(0, n, 100):
                    await store.append(stream, events[start : start + 100], start)
                folded, raw = [], []
                parts: dict[str, list[float]] = {"read": [], "decode": [], "fold": []}
                for _ in range(_REPEAT):
                    started = time.perf_counter()
                    records = await store.read(stream, up_to_version=n)
                    read = time.perf_counter()
                    history = decode_history(records)
                    decoded = time.perf_counter()
                    state = replay_versioned(
                        stream, zip((r.version for r in records), history, strict=True)
                    )
                    done = time.perf_counter()
                    folded.append(done - started)
                    parts["read"].append(read - started)
                    parts["decode"].append(decoded - read)
                    parts["fold"].append(done - decoded)
                    assert state.version == n
                    started = time.perf_counter()
                    rows = await conn.fetch(
                        f'SELECT * FROM "{schema}".events WHERE stream_id = $1 AND version <= $2'
                        " ORDER BY version",
                        stream,
                        n,
                    )
                    raw.append(time.perf_counter() - started)
                    assert len(rows) == n
                result[f"state_at_{n}_ms"] = statistics.median(folded) * 1000
                result[f"raw_read_{n}_ms"] = statistics.median(raw) * 1000
                result[f"state_at_{n}_over_raw"] = statistics.median(folded) / statistics.median(
                    raw
                )
                if n == 1000:
                    result["state_at_1000_goal_ratio"] = result["state_at_1000_ms"] / _GOAL_1000_MS
                    for part, seconds in parts.items():
                        result[f"state_at_1000_{part}_ms"] = statistics.median(seconds) * 1000
        finally:
            # Benchmark scratch schema only; product code never deletes events.
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()
    return result


async def bench_rollback_latency(
    settings: Settings, env: dict[str, str], log_dir: Path, rollbacks: int = 20
) -> dict[str, float]:
    """p50/p95 ms from a rollback's publish to the writer's new task on its topic."""
    tasks: asyncio.Queue[tuple[float, WriteTask]] = asyncio.Queue()
    completions: asyncio.Queue[CompletionEvent] = asyncio.Queue()

    async def on_task(delivery: Delivery) -> None:
        if isinstance(delivery.message, WriteTask):
            tasks.put_nowait((time.perf_counter(), delivery.message))

    async def on_completion(delivery: Delivery) -> None:
        if isinstance(delivery.message, CompletionEvent):
            completions.put_nowait(delivery.message)

    workflow_id = f"wf-bench-rollback-{uuid.uuid4().hex[:8]}"
    with ServiceProcesses(env, log_dir):
        upstream = kafka_bus(settings, service="bench", topics=[GOALS], principal="upstream")
        operator = kafka_bus(settings, service="bench", topics=[CONTROL], principal="operator")
        async with upstream, operator:
            group = f"bench-{uuid.uuid4().hex[:6]}"
            await operator.subscribe(
                Subscription([task_topic("writer")], f"{group}-t", on_task, "bench")
            )
            await operator.subscribe(
                Subscription([COMPLETIONS], f"{group}-c", on_completion, "bench")
            )
            goal = GoalSubmitted(workflow_id=workflow_id, goal="Explain how replay rebuilds state")
            await upstream.publish(GOALS, goal, key=workflow_id)
            await _next_completion(completions, workflow_id, run=1)
            async with PostgresEventStore(settings.require_database_url(), pool_max=1) as store:
                records = await store.read(workflow_id)
            target = next(r.version for r in records if r.type == PassagesRetrieved.event_type())
            while not tasks.empty():
                tasks.get_nowait()
            latencies = []
            for run in range(2, rollbacks + 2):
                rollback = RollbackWorkflow(
                    workflow_id=workflow_id, to_version=target, reason="bench"
                )
                started = time.perf_counter()
                await operator.publish(CONTROL, rollback, key=workflow_id)
                while True:
                    arrived, task = await asyncio.wait_for(tasks.get(), 30)
                    if task.workflow_id == workflow_id and arrived >= started:
                        break
                latencies.append(arrived - started)
                await _next_completion(completions, workflow_id, run=run)
    quantiles = statistics.quantiles(latencies, n=20)
    return {
        "rollbacks": float(len(latencies)),
        "rollback_to_task_p50_ms": statistics.median(latencies) * 1000,
        "rollback_to_task_p95_ms": quantiles[18] * 1000,
    }


async def _next_completion(
    completions: asyncio.Queue[CompletionEvent], workflow_id: str, run: int
) -> CompletionEvent:
    while True:
        completion = await asyncio.wait_for(completions.get(), 60)
        if completion.workflow_id == workflow_id and completion.run >= run:
            return completion
