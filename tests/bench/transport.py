"""Round-trip latency of ``KafkaBus`` next to raw aiokafka with the same client tuning.

One message at a time: publish, wait until the subscribed handler has it, repeat. The raw
baselines use plain aiokafka producers and ``getmany`` consumers (same ``KafkaTuning``), with and
without a commit per record; the bus commits per record, so ``raw_commit`` is its like-for-like
floor. Expect all three near ``fetch_max_wait_ms``: the broker holds a waiting fetch that long.

    python -m tests.bench.transport 127.0.0.1:9092 [n]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.messages import GoalSubmitted
from schemas.registry import encode_message
from shared.settings import KafkaTuning
from shared.transport import Delivery, KafkaBus, Subscription
from shared.transport.admin import ensure_topics

__all__ = ["bench_round_trip"]

_WARMUP = 20
_MESSAGE = GoalSubmitted(workflow_id="wf-bench", goal="measure the round trip of one message")


async def bench_round_trip(bootstrap: str, n: int = 300) -> dict[str, float]:
    """p50/p95 round-trip milliseconds of KafkaBus and raw aiokafka, and their ratios."""
    tuning = KafkaTuning()
    bus = await _bus_round_trips(bootstrap, n, tuning)
    raw_commit = await _raw_round_trips(bootstrap, n, tuning, commit=True)
    raw = await _raw_round_trips(bootstrap, n, tuning, commit=False)
    result: dict[str, float] = {"n": float(n)}
    for name, samples in (("bus", bus), ("raw_commit", raw_commit), ("raw", raw)):
        cuts = statistics.quantiles(samples, n=100)
        result[f"{name}_p50_ms"] = cuts[49] * 1000
        result[f"{name}_p95_ms"] = cuts[94] * 1000
    for pct in ("p50", "p95"):
        result[f"ratio_{pct}_vs_raw_commit"] = (
            result[f"bus_{pct}_ms"] / result[f"raw_commit_{pct}_ms"]
        )
        result[f"ratio_{pct}_vs_raw"] = result[f"bus_{pct}_ms"] / result[f"raw_{pct}_ms"]
    return result


async def _timed(
    n: int, send: Callable[[], Awaitable[None]], arrived: asyncio.Queue[None]
) -> list[float]:
    samples: list[float] = []
    for i in range(_WARMUP + n):
        start = time.perf_counter()
        await send()
        await asyncio.wait_for(arrived.get(), timeout=30)
        if i >= _WARMUP:  # the first round trips include the group join
            samples.append(time.perf_counter() - start)
    return samples


async def _bus_round_trips(bootstrap: str, n: int, tuning: KafkaTuning) -> list[float]:
    topic = f"bench.bus.{uuid.uuid4().hex[:8]}"
    arrived: asyncio.Queue[None] = asyncio.Queue()

    async def handler(delivery: Delivery) -> None:
        arrived.put_nowait(None)

    async with KafkaBus(bootstrap, service="bench", tuning=tuning, topics=[topic]) as bus:
        await bus.subscribe(Subscription([topic], f"agentlog.{topic}", handler, "bench"))

        async def send() -> None:
            await bus.publish(topic, _MESSAGE, key="wf-bench")

        return await _timed(n, send, arrived)


async def _raw_round_trips(
    bootstrap: str, n: int, tuning: KafkaTuning, *, commit: bool
) -> list[float]:
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [topic], partitions=4, tuning=tuning)
    arrived: asyncio.Queue[None] = asyncio.Queue()
    finished = asyncio.Event()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=tuning.linger_ms,
        request_timeout_ms=tuning.request_timeout_ms,
    )
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"agentlog.{topic}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=tuning.session_timeout_ms,
        heartbeat_interval_ms=tuning.heartbeat_interval_ms,
        rebalance_timeout_ms=tuning.rebalance_timeout_ms,
        fetch_max_wait_ms=tuning.fetch_max_wait_ms,
    )
    await producer.start()
    await consumer.start()

    async def consume() -> None:
        # getmany, as KafkaBus does: with getone the next fetch is only sent once the loop asks
        # again (after the commit), which lines it up behind the next publish in this ping-pong
        # and flatters the number (~2 ms) in a way independent producers would not see.
        while not finished.is_set():
            for tp, records in (await consumer.getmany(timeout_ms=100)).items():
                for record in records:
                    arrived.put_nowait(None)
                    if commit:
                        await consumer.commit({tp: record.offset + 1})

    task = asyncio.create_task(consume())
    value = encode_message(_MESSAGE)

    async def send() -> None:
        await producer.send_and_wait(topic, value, key=b"wf-bench")

    try:
        return await _timed(n, send, arrived)
    finally:
        finished.set()  # let the loop finish its last commit rather than cancel it mid-request
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()
        await producer.stop()


def main() -> None:
    """Run the benchmark against the broker named on the command line and print ratios."""
    from shared.telemetry import configure_tracing, shutdown_tracing

    bootstrap = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    configure_tracing("bench", "none")  # spans are created, as in a service, but not exported
    try:
        result = asyncio.run(bench_round_trip(bootstrap, n))
    finally:
        shutdown_tracing()
    for name, value in result.items():
        print(f"{name:28s} {value:8.2f}")


if __name__ == "__main__":
    main()
