"""What tracing costs: CPU time of the five service processes per workflow, tracing off vs on.

Each mode runs its own fleet (``AGENTLOG_OTEL_EXPORTER`` = none, file, otlp to a local
OTLP/HTTP receiver), one warm-up workflow, then ``n`` workflows one at a time. CPU is user +
system time of the service processes (psutil), so the benchmark's own client does not count.
An idle fleet burns CPU too (heartbeats, polls), so the idle rate measured over a few seconds
before the workflows is taken off in the ``net`` numbers: they hold up better on a busy
machine, where latencies (and so idle time per workflow) swing. Ratios are against the
``none`` fleet measured in the same run.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from schemas.topics import COMPLETIONS, GOALS
from shared.runtime.processes import ServiceProcesses
from shared.runtime.wiring import kafka_bus
from shared.settings import Settings
from shared.transport import Subscription
from tests.bench.workflows import _Completions, _run_one
from tests.e2e.otlp import OtlpReceiver

__all__ = ["bench_tracing"]

MODES = ("none", "file", "otlp")
_IDLE_S = 3.0


def _cpu_s(fleet: ServiceProcesses) -> float:
    total = 0.0
    for proc in fleet.processes.values():
        times = psutil.Process(proc.pid).cpu_times()
        total += times.user + times.system
    return total


async def _measure(
    settings: Settings, env: dict[str, str], log_dir: Path, mode: str, n: int
) -> tuple[float, float, float, int]:
    """CPU ms per workflow (raw and net of idle), p50 latency in ms, spans received."""
    with (
        tempfile.TemporaryDirectory(prefix="agentlog-bench-traces-") as traces,
        OtlpReceiver() as receiver,
    ):
        mode_env = {
            **env,
            "AGENTLOG_OTEL_EXPORTER": mode,
            # The file exporter writes under the state dir: a scratch one, not the stack's.
            "AGENTLOG_STATE_DIR": traces if mode == "file" else env.get("AGENTLOG_STATE_DIR", ""),
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        }
        mode_env = {k: v for k, v in mode_env.items() if v}
        completions = _Completions()
        with ServiceProcesses(mode_env, log_dir / mode) as fleet:
            bus = kafka_bus(
                settings, service="bench", topics=[GOALS, COMPLETIONS], principal="upstream"
            )
            async with bus:
                await bus.subscribe(
                    Subscription(
                        [COMPLETIONS], f"bench-tracing-{mode}", completions.handle, "bench"
                    )
                )
                await _run_one(bus, completions, f"{mode}-warmup")  # groups joined, index built
                idle_from = _cpu_s(fleet)
                await asyncio.sleep(_IDLE_S)  # the fleet's idle CPU rate, nothing in flight
                before, started = _cpu_s(fleet), time.monotonic()
                idle_rate = (before - idle_from) / _IDLE_S
                latencies = [await _run_one(bus, completions, f"{mode}-{i}") for i in range(n)]
                used = _cpu_s(fleet) - before
                net = max(0.0, used - idle_rate * (time.monotonic() - started))
        p50_ms = statistics.median(latencies) * 1000
        return used * 1000 / n, net * 1000 / n, p50_ms, len(receiver.received())


async def bench_tracing(
    settings: Settings, env: dict[str, str], log_dir: Path, n: int = 20
) -> dict[str, float]:
    """CPU ms per workflow and p50 latency per mode, with ratios to tracing off."""
    numbers: dict[str, float] = {"workflows": n}
    for mode in MODES:
        cpu_ms, net_ms, p50_ms, spans = await _measure(settings, env, log_dir, mode, n)
        numbers[f"cpu_ms_per_workflow_{mode}"] = cpu_ms
        numbers[f"net_cpu_ms_per_workflow_{mode}"] = net_ms
        numbers[f"p50_ms_{mode}"] = p50_ms
        if mode == "otlp":
            numbers["otlp_spans_per_workflow"] = spans / (n + 1)
    for mode in MODES[1:]:
        for kind in ("cpu", "net_cpu"):
            off = numbers[f"{kind}_ms_per_workflow_none"] or 1.0
            numbers[f"{kind}_ratio_{mode}_vs_off"] = numbers[f"{kind}_ms_per_workflow_{mode}"] / off
    return numbers
