"""End-to-end workflow latency and throughput over the five service processes.

Latency: goal published → completion event consumed from ``agentlog.completions``, one workflow
in flight at a time. Throughput: the same with ``concurrency`` workflows in flight.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from pathlib import Path

from schemas.messages import CompletionEvent, GoalSubmitted
from schemas.topics import COMPLETIONS, GOALS
from shared.runtime.processes import ServiceProcesses
from shared.runtime.wiring import kafka_bus
from shared.settings import Settings
from shared.transport import Delivery, Subscription
from shared.transport.kafka import KafkaBus

__all__ = ["bench_workflows"]

GOAL = "Explain how replay rebuilds workflow state from the event log"


class _Completions:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.outcomes: dict[str, str] = {}
        self.changed = asyncio.Condition()

    async def handle(self, delivery: Delivery) -> None:
        message = delivery.message
        if isinstance(message, CompletionEvent):
            async with self.changed:
                self.arrived.setdefault(message.workflow_id, time.perf_counter())
                self.outcomes[message.workflow_id] = message.outcome
                self.changed.notify_all()

    async def wait(self, workflow_id: str, timeout_s: float) -> float:
        async with asyncio.timeout(timeout_s), self.changed:
            await self.changed.wait_for(lambda: workflow_id in self.arrived)
        return self.arrived[workflow_id]


async def _run_one(bus: KafkaBus, completions: _Completions, tag: str) -> float:
    workflow_id = f"wf-bench-{tag}-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    await bus.publish(GOALS, GoalSubmitted(workflow_id=workflow_id, goal=GOAL), key=workflow_id)
    arrived = await completions.wait(workflow_id, 120)
    return arrived - started


async def bench_workflows(
    settings: Settings, env: dict[str, str], log_dir: Path, n: int = 50, concurrency: int = 10
) -> dict[str, float]:
    """p50/p95 latency (one in flight) and workflows/s (``concurrency`` in flight)."""
    completions = _Completions()
    with ServiceProcesses(env, log_dir):
        # Goals are signed as an upstream system, as the supervisor requires.
        bus = kafka_bus(
            settings, service="bench", topics=[GOALS, COMPLETIONS], principal="upstream"
        )
        async with bus:
            await bus.subscribe(
                Subscription(
                    [COMPLETIONS], f"bench-{uuid.uuid4().hex[:6]}", completions.handle, "bench"
                )
            )
            await _run_one(bus, completions, "warmup")  # groups joined, index built
            latencies = [await _run_one(bus, completions, f"seq{i}") for i in range(n)]
            gate = asyncio.Semaphore(concurrency)

            async def gated(i: int) -> float:
                async with gate:
                    return await _run_one(bus, completions, f"par{i}")

            started = time.perf_counter()
            await asyncio.gather(*(gated(i) for i in range(n)))
            elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=20)
    failed = sum(1 for outcome in completions.outcomes.values() if outcome != "completed")
    return {
        "workflows": float(n),
        "latency_p50_ms": statistics.median(latencies) * 1000,
        "latency_p95_ms": quantiles[18] * 1000,
        "throughput_wf_per_s": n / elapsed,
        "concurrency": float(concurrency),
        "failed": float(failed),
    }
