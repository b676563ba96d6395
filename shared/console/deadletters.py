"""Dead letters for the console: the records refused on every ``<topic>.dlq``, with why.

A port with two adapters: ``KafkaDeadLetters`` reads the topics with a short-lived consumer that
joins no group (it assigns partitions and reads the tail of each, so it moves no one's offsets),
``MemoryDeadLetters`` reads an ``InMemoryBroker`` for unit tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.topics import TOPICS, dlq_topic
from shared.transport.memory import InMemoryBroker

__all__ = [
    "DEAD_LETTER_TOPICS",
    "DeadLetterRow",
    "DeadLetterSource",
    "KafkaDeadLetters",
    "MemoryDeadLetters",
    "dead_letter_row",
]

DEAD_LETTER_TOPICS = tuple(dlq_topic(t.name) for t in TOPICS)
_TEXT_CHARS = 300


@dataclass(frozen=True)
class DeadLetterRow:
    """One refused record: where it came from, what it was, and the reason."""

    topic: str
    partition: int
    offset: int
    reason: str
    error: str
    origin: str
    ce_type: str
    ce_id: str
    key: str
    time: str
    service: str


class DeadLetterSource(Protocol):
    """Where the console reads dead letters from."""

    async def recent(self, limit: int) -> list[DeadLetterRow]:
        """Up to ``limit`` dead letters, newest first."""
        ...


def dead_letter_row(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    timestamp_ms: int | None,
) -> DeadLetterRow:
    """A dead letter's row from its headers (``shared.transport.dlq`` writes them)."""
    named = {name: value.decode("utf-8", errors="replace") for name, value in headers}
    when = named.get("dlq_time") or (
        datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="seconds")
        if timestamp_ms
        else ""
    )
    origin = named.get("dlq_origin_topic", topic.removesuffix(".dlq"))
    where = f"{origin}[{named.get('dlq_origin_partition', '?')}]@{named.get('dlq_origin_offset')}"
    return DeadLetterRow(
        topic=topic,
        partition=partition,
        offset=offset,
        reason=named.get("dlq_reason", "unknown"),
        error=named.get("dlq_error", "")[:_TEXT_CHARS],
        origin=where,
        ce_type=named.get("ce_type", ""),
        ce_id=named.get("ce_id", ""),
        key=(key or b"").decode("utf-8", errors="replace")[:_TEXT_CHARS],
        time=when,
        service=named.get("dlq_service", ""),
    )


def _newest(rows: list[DeadLetterRow], limit: int) -> list[DeadLetterRow]:
    return sorted(rows, key=lambda r: (r.time, r.offset), reverse=True)[:limit]


class MemoryDeadLetters:
    """Dead letters on an ``InMemoryBroker``."""

    def __init__(self, broker: InMemoryBroker) -> None:
        self._broker = broker

    async def recent(self, limit: int) -> list[DeadLetterRow]:
        """Up to ``limit`` dead letters, newest first."""
        rows = [
            dead_letter_row(r.topic, r.partition, r.offset, r.key, r.headers, r.timestamp_ms)
            for topic in DEAD_LETTER_TOPICS
            for r in self._broker.records(topic)
        ]
        return _newest(rows, limit)


class KafkaDeadLetters:
    """Dead letters on a Kafka cluster, read fresh on each call (a page view)."""

    def __init__(self, bootstrap: str, *, timeout_s: float = 5.0) -> None:
        self._bootstrap = bootstrap
        self._timeout_s = timeout_s

    async def recent(self, limit: int) -> list[DeadLetterRow]:
        """Up to ``limit`` dead letters, newest first (the tail of every partition)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            request_timeout_ms=int(self._timeout_s * 1000),
        )
        await consumer.start()
        try:
            async with asyncio.timeout(self._timeout_s):
                return _newest(await self._read(consumer, limit), limit)
        finally:
            await consumer.stop()

    async def _read(self, consumer: AIOKafkaConsumer, limit: int) -> list[DeadLetterRow]:
        existing = await consumer.topics()
        partitions = [
            TopicPartition(topic, p)
            for topic in DEAD_LETTER_TOPICS
            if topic in existing
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return []
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        waiting = {}
        for tp in partitions:
            if ends[tp] > starts[tp]:
                consumer.seek(tp, max(starts[tp], ends[tp] - limit))
                waiting[tp] = ends[tp]
        rows: list[DeadLetterRow] = []
        while waiting:
            batch = await consumer.getmany(*waiting, timeout_ms=200)
            for tp, records in batch.items():
                for r in records:
                    headers = list(r.headers or ())
                    rows.append(
                        dead_letter_row(
                            tp.topic, tp.partition, r.offset, r.key, headers, r.timestamp
                        )
                    )
                if records and records[-1].offset + 1 >= waiting.get(tp, 0):
                    waiting.pop(tp, None)
        return rows
