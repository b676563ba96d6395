"""A plain reader of a whole topic, from its first record, for the end-to-end checks.

It joins no consumer group: it assigns itself every partition and seeks to the beginning, as a
new group with ``auto_offset_reset="earliest"`` would start, without the group join (about a
second on Tansu) that every check waiting for a completion or a dead letter used to pay.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition


@asynccontextmanager
async def read_from_start(
    bootstrap: str, topic: str, *, wait_s: float = 30, **settings: Any
) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer of every partition of ``topic``, positioned at its beginning
    (``settings`` go to :class:`AIOKafkaConsumer`); waits up to ``wait_s`` for the topic."""
    async with asyncio.timeout(wait_s):
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **settings
            )
            try:
                partitions = await _partitions(consumer, topic)
            except BaseException:
                await consumer.stop()
                raise
            if partitions:
                break
            # Not created yet (an external stack's services create topics as they start).
            await consumer.stop()
            await asyncio.sleep(0.2)
    try:
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        yield consumer
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The partitions of ``topic``, or none if the broker does not know it within a second or
    two. Apache Kafka names no topic in the client's first metadata; assigning partition 0
    (which every topic has) makes the client ask about the topic."""
    await consumer.start()
    consumer.assign([TopicPartition(topic, 0)])
    for _ in range(40):
        partitions: set[int] | None = consumer.partitions_for_topic(topic)
        if partitions:
            return partitions
        await asyncio.sleep(0.05)
    return set()
