"""Both brokers side by side in one run: what choosing Tansu or Apache Kafka costs.

For each broker, on a stack of its own: how long ``stack up`` takes, the produce→consume round
trip through ``KafkaBus``, single-workflow latency and workflows/s with the five services, and
the rebalance time after a SIGKILL (a group member in another process is killed; the time
until the survivor owns every partition). The Kafka half is skipped, saying why, where Java or
Maven is missing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from shared.settings import KafkaTuning, Settings
from shared.stack import EmbeddedStack
from shared.transport.admin import ensure_topics
from tests.bench.transport import bench_round_trip
from tests.bench.workflows import bench_workflows
from tests.kafka_available import KAFKA_MISSING

__all__ = ["bench_brokers"]

_PARTITIONS = 4
# A group member in its own process: joins, says so, then consumes until killed.
_MEMBER = """
import asyncio, sys
from aiokafka import AIOKafkaConsumer
async def main(bootstrap, topic, group):
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
        session_timeout_ms={session}, heartbeat_interval_ms={heartbeat},
        rebalance_timeout_ms={rebalance}, enable_auto_commit=False)
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=100)
    print("joined", flush=True)
    while True:
        await consumer.getmany(timeout_ms=100)
asyncio.run(main(*sys.argv[1:]))
"""


async def _rebalance_after_kill(bootstrap: str) -> float:
    """Seconds from SIGKILLing one of two group members until the other owns every partition."""
    tuning = KafkaTuning()
    topic, group = f"bench-rebalance-{uuid.uuid4().hex[:6]}", f"bench-{uuid.uuid4().hex[:6]}"
    await ensure_topics(bootstrap, [topic], partitions=_PARTITIONS)
    script = _MEMBER.format(
        session=tuning.session_timeout_ms,
        heartbeat=tuning.heartbeat_interval_ms,
        rebalance=tuning.rebalance_timeout_ms,
    )
    member = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, bootstrap, topic, group, stdout=asyncio.subprocess.PIPE
    )
    survivor = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        session_timeout_ms=tuning.session_timeout_ms,
        heartbeat_interval_ms=tuning.heartbeat_interval_ms,
        rebalance_timeout_ms=tuning.rebalance_timeout_ms,
        enable_auto_commit=False,
    )
    try:
        assert member.stdout is not None
        await member.stdout.readline()  # "joined"
        await survivor.start()
        async with asyncio.timeout(60):
            # Both members hold partitions: the group is split.
            while not 0 < len(survivor.assignment()) < _PARTITIONS:
                await survivor.getmany(timeout_ms=100)
            os.kill(member.pid, signal.SIGKILL)
            killed = time.perf_counter()
            while len(survivor.assignment()) < _PARTITIONS:
                await survivor.getmany(timeout_ms=50)
            return time.perf_counter() - killed
    finally:
        if member.returncode is None:
            member.kill()
        await member.wait()
        await survivor.stop()


def _one_broker(broker: str, workflows: int, concurrency: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"agentlog-bench-{broker}-") as tmp:
        stack = EmbeddedStack(Path(tmp) / ".agentlog", broker=broker)
        started = time.perf_counter()
        info = stack.up()
        up_s = time.perf_counter() - started
        try:
            round_trip = asyncio.run(bench_round_trip(info.kafka_bootstrap, n=200))
            env = {
                "AGENTLOG_DATABASE_URL": info.database_url,
                "AGENTLOG_KAFKA_BOOTSTRAP": info.kafka_bootstrap,
                "AGENTLOG_DOCS_DIR": str(Path.cwd() / "docs"),
                "AGENTLOG_AUTH_KEYS_DIR": str(stack.state_dir / "keys"),
            }
            settings = Settings(
                database_url=info.database_url,
                kafka_bootstrap=info.kafka_bootstrap,
                state_dir=stack.state_dir,
            )
            flows = asyncio.run(
                bench_workflows(settings, env, Path(tmp) / "logs", workflows, concurrency)
            )
            rebalance_s = asyncio.run(_rebalance_after_kill(info.kafka_bootstrap))
        finally:
            stack.down()
    return {
        "stack_up_s": up_s,
        "round_trip_p50_ms": round_trip["bus_p50_ms"],
        "workflow_p50_ms": flows["latency_p50_ms"],
        "workflow_p95_ms": flows["latency_p95_ms"],
        "workflows_per_s": flows["throughput_wf_per_s"],
        "in_flight": flows["concurrency"],
        "failed": flows["failed"],
        "rebalance_after_sigkill_s": rebalance_s,
    }


def bench_brokers(workflows: int = 20, concurrency: int = 10) -> dict[str, dict[str, float]]:
    """Each broker's figures, Tansu first; Kafka's are left out where it cannot run."""
    results = {"tansu": _one_broker("tansu", workflows, concurrency)}
    if KAFKA_MISSING is None:
        results["kafka"] = _one_broker("kafka", workflows, concurrency)
    else:
        print(f"brokers: Apache Kafka skipped: {KAFKA_MISSING}", flush=True)
    return results
