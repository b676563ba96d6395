"""KafkaBus on a real broker: the shared transport contract, plus topic creation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas.messages import GoalSubmitted
from shared.auth import Signer
from shared.settings import KafkaTuning
from shared.transport import Bus, Delivery, KafkaBus, RawRecord, RetryPolicy, Subscription
from shared.transport.admin import ensure_topics, supports_idempotence
from tests.conftest import StackInfo
from tests.contracts.transport import FAST_RETRY, WAIT_S, TransportContract, TransportHarness

pytestmark = pytest.mark.integration


class KafkaHarness(TransportHarness):
    """KafkaBus instances plus plain aiokafka clients for raw records."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.tuning = KafkaTuning()

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
        """A KafkaBus on the session's broker."""
        return KafkaBus(
            self.bootstrap,
            service=service,
            tuning=self.tuning,
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
        """Through a plain aiokafka producer: no envelope, no validation."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            sent = await producer.send_and_wait(topic, value, key=key, headers=list(headers))
        finally:
            await producer.stop()
        return RawRecord(topic, sent.partition, sent.offset, key, value, tuple(headers))

    async def read_raw(self, topic: str, count: int) -> list[RawRecord]:
        """Read every partition from the beginning, without a group, until ``count`` records."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=self.tuning.fetch_max_wait_ms,
        )
        await consumer.start()
        try:
            # Not partitions_for_topic(): Apache Kafka (unlike Tansu) gives a new client
            # metadata for no topic until one is asked for, so that would be None.
            partition_count = (await _partition_counts(self.bootstrap, [topic]))[topic]
            partitions = [TopicPartition(topic, p) for p in range(partition_count)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            return await asyncio.wait_for(_read(consumer, count), timeout=WAIT_S)
        finally:
            await consumer.stop()


async def _read(consumer: AIOKafkaConsumer, count: int) -> list[RawRecord]:
    records: list[ConsumerRecord] = []
    while len(records) < count:
        for batch in (await consumer.getmany(timeout_ms=200)).values():
            records.extend(batch)
    return [
        RawRecord(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers))
        for r in records[:count]
    ]


class TestKafkaTransport(TransportContract):
    """Runs the transport contract on KafkaBus against the session's broker."""

    @pytest.fixture
    def harness(self, request: pytest.FixtureRequest) -> TransportHarness:
        """A harness on the embedded (or configured) broker."""
        info: StackInfo = request.getfixturevalue("stack_info")
        return KafkaHarness(info.kafka_bootstrap)


async def _partition_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described}


async def test_start_creates_topics_and_their_dlqs(stack_info: StackInfo) -> None:
    """start() creates each declared topic and its .dlq with the requested partitions."""
    topic = f"create.{uuid.uuid4().hex[:12]}"
    async with KafkaBus(stack_info.kafka_bootstrap, service="s", topics=[topic], partitions=2):
        counts = await _partition_counts(stack_info.kafka_bootstrap, [topic, f"{topic}.dlq"])
    assert counts == {topic: 2, f"{topic}.dlq": 2}


async def test_concurrent_topic_creation_tolerates_races(stack_info: StackInfo) -> None:
    """Processes creating the same topics at once all succeed; each topic is created once."""
    topic = f"race.{uuid.uuid4().hex[:12]}"
    created = await asyncio.gather(
        *(ensure_topics(stack_info.kafka_bootstrap, [topic], partitions=3) for _ in range(3))
    )
    assert sorted(name for names in created for name in names) == [topic, f"{topic}.dlq"]
    counts = await _partition_counts(stack_info.kafka_bootstrap, [topic, f"{topic}.dlq"])
    assert counts == {topic: 3, f"{topic}.dlq": 3}


async def test_the_producer_is_not_idempotent_on_a_broker_without_producer_ids(
    stack_info: StackInfo,
) -> None:
    """On Tansu (no producer ids) the bus starts, publishes, and says it is not idempotent."""
    assert not await supports_idempotence(stack_info.kafka_bootstrap)
    topic = f"t-idem-{uuid.uuid4().hex[:8]}"
    async with KafkaBus(stack_info.kafka_bootstrap, service="s", topics=[topic]) as bus:
        await bus.publish(
            topic, GoalSubmitted(workflow_id="wf-idem", goal="explain replay"), key="wf-idem"
        )
        assert bus.health()["idempotent_producer"] is False


async def test_handled_offsets_are_committed_while_the_bus_runs(stack_info: StackInfo) -> None:
    """Handled offsets are committed by the interval's committer while the bus runs, not only
    at stop(): the group's offset reaches the end of the topic."""
    topic = f"t-commit-{uuid.uuid4().hex[:8]}"
    group = f"g-commit-{uuid.uuid4().hex[:8]}"
    handled: list[str] = []

    async def handle(delivery: Delivery) -> None:
        handled.append(delivery.key or "")

    tuning = KafkaTuning(commit_interval_ms=200)
    async with KafkaBus(
        stack_info.kafka_bootstrap, service="s", topics=[topic], tuning=tuning, partitions=1
    ) as bus:
        await bus.subscribe(Subscription([topic], group, handle, "s"))
        for i in range(20):
            await bus.publish(
                topic, GoalSubmitted(workflow_id=f"wf-{i}", goal="explain replay"), key=f"wf-{i}"
            )
        committed = await _wait_for_group_offset(stack_info.kafka_bootstrap, group, topic, 20)
        assert len(handled) == 20
    assert committed == 20


async def _wait_for_group_offset(bootstrap: str, group: str, topic: str, offset: int) -> int:
    """The group's committed offset on partition 0 once it reaches ``offset`` (or the last
    seen, after WAIT_S)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    seen = -1
    try:
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while seen < offset and asyncio.get_running_loop().time() < deadline:
            tp = TopicPartition(topic, 0)
            # partitions= is required: without it Tansu breaks the connection.
            found = (await admin.list_consumer_group_offsets(group, partitions=[tp])).get(tp)
            seen = found.offset if found is not None else -1
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
    return seen
