"""The in-memory bus: the shared transport contract, plus what only the fake offers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from shared.auth import Signer
from shared.transport import Bus, InMemoryBroker, InMemoryBus, RawRecord, RetryPolicy
from tests.contracts.transport import (
    FAST_RETRY,
    WAIT_S,
    TransportContract,
    TransportHarness,
    goal,
)


class MemoryHarness(TransportHarness):
    """Buses over one shared InMemoryBroker."""

    def __init__(self) -> None:
        self.broker = InMemoryBroker()

    def make_bus(
        self,
        service: str,
        topics: Sequence[str],
        *,
        retry: RetryPolicy = FAST_RETRY,
        drain_timeout_s: float = WAIT_S,
        signer: Signer | None = None,
        max_record_bytes: int = 1_000_000,
    ) -> Bus:
        """An InMemoryBus on the shared broker."""
        return InMemoryBus(
            service=service,
            broker=self.broker,
            topics=topics,
            retry=retry,
            drain_timeout_s=drain_timeout_s,
            signer=signer,
            max_record_bytes=max_record_bytes,
        )

    async def inject_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> RawRecord:
        """Through InMemoryBus.inject_raw, the fake's door for garbage."""
        return InMemoryBus(service="raw", broker=self.broker).inject_raw(topic, key, value, headers)

    async def read_raw(self, topic: str, count: int) -> list[RawRecord]:
        """Wait until the topic holds ``count`` records."""

        async def enough() -> list[RawRecord]:
            while len(records := self.broker.records(topic)) < count:
                await self.broker.change_signal().wait()
            return records[:count]

        return await asyncio.wait_for(enough(), timeout=WAIT_S)


class TestInMemoryTransport(TransportContract):
    """Runs the transport contract on InMemoryBus."""

    @pytest.fixture
    def harness(self, request: pytest.FixtureRequest) -> TransportHarness:
        """A fresh broker per test."""
        return MemoryHarness()


async def test_same_key_always_lands_in_the_same_partition() -> None:
    """Records are partitioned by a stable hash of their key."""
    broker = InMemoryBroker(default_partitions=4)
    partitions = {broker.append("t", b"wf-1", b"{}").partition for _ in range(5)}
    assert len(partitions) == 1


async def test_start_creates_topics_and_dead_letter_topics() -> None:
    """start() creates each declared topic and its .dlq with the bus's partition count."""
    bus = InMemoryBus(service="s", topics=["agentlog.goals"], partitions=3)
    async with bus:
        assert bus.broker.partitions_for("agentlog.goals") == 3
        assert bus.broker.partitions_for("agentlog.goals.dlq") == 3


async def test_publish_before_start_is_refused() -> None:
    """Using a bus before start() raises instead of silently buffering."""
    bus = InMemoryBus(service="s")
    with pytest.raises(RuntimeError, match="before start"):
        await bus.publish("t", goal("too early"), key="wf-1")


async def test_inject_raw_accepts_text_keys() -> None:
    """inject_raw stores the record exactly as given, encoding a str key as UTF-8."""
    bus = InMemoryBus(service="s")
    record = bus.inject_raw("t", "wf-1", b"\x00garbage", [("h", b"v")])
    assert bus.records("t") == [record]
    assert (record.key, record.value, record.headers) == (b"wf-1", b"\x00garbage", (("h", b"v"),))
