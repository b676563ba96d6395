"""``InMemoryBus``: the transport port without a broker, for unit tests of services.

Same semantics as ``KafkaBus`` (the contract suite holds both to them): records land in a
partition chosen by a hash of the key, each group has committed offsets, an offset is committed
only after the handler returned or the record was dead-lettered, failing handlers are retried,
and undecodable records go to ``<topic>.dlq`` with the same ``dlq_*`` headers. Several buses may
share one ``InMemoryBroker``, like processes sharing a Kafka cluster; in a group, the member
that joined first consumes every partition until it leaves (Kafka would split them).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
import zlib
from collections.abc import Mapping, Sequence

from schemas.base import Message
from shared.auth import Signer
from shared.transport.admin import with_dead_letter_topics
from shared.transport.dlq import DeadLetter, RetryPolicy
from shared.transport.envelope import Envelope, RawRecord, source_for
from shared.transport.pipeline import process_record, traced_publish
from shared.transport.port import Bus, Subscription

__all__ = ["InMemoryBroker", "InMemoryBus"]


class InMemoryBroker:
    """Topics, partitions, group offsets and group membership, in one process."""

    def __init__(self, *, default_partitions: int = 4) -> None:
        self.default_partitions = default_partitions
        self._partitions: dict[str, list[list[RawRecord]]] = {}
        self._committed: dict[tuple[str, str, int], int] = {}
        self._members: dict[str, list[object]] = {}
        self._round_robin = itertools.count()
        self._changed = asyncio.Event()

    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        """Create ``topic`` unless it exists (an existing one keeps its partition count)."""
        count = partitions or self.default_partitions
        self._partitions.setdefault(topic, [[] for _ in range(count)])

    def partitions_for(self, topic: str) -> int:
        """How many partitions ``topic`` has; 0 when it does not exist."""
        return len(self._partitions.get(topic, ()))

    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> RawRecord:
        """Write one record, auto-creating the topic as brokers do."""
        self.create_topic(topic)
        partitions = self._partitions[topic]
        if key is None:
            partition = next(self._round_robin) % len(partitions)
        else:
            partition = zlib.crc32(key) % len(partitions)
        log = partitions[partition]
        now_ms = int(time.time() * 1000)
        record = RawRecord(topic, partition, len(log), key, value, tuple(headers), now_ms)
        log.append(record)
        self.notify()
        return record

    def records(self, topic: str) -> list[RawRecord]:
        """Every record of ``topic``, partition by partition, in offset order."""
        return [record for log in self._partitions.get(topic, ()) for record in log]

    def committed(self, group: str, topic: str, partition: int) -> int:
        """The group's next offset to read in ``topic[partition]``."""
        return self._committed.get((group, topic, partition), 0)

    def commit(self, group: str, topic: str, partition: int, offset: int) -> None:
        """Record that the group is done with everything before ``offset``."""
        self._committed[(group, topic, partition)] = offset

    def next_record(self, group: str, topic: str, partition: int) -> RawRecord | None:
        """The first record the group has not committed, if any."""
        log = self._partitions[topic][partition]
        offset = self.committed(group, topic, partition)
        return log[offset] if offset < len(log) else None

    def join(self, group: str, member: object) -> None:
        """Add a member to the group."""
        self._members.setdefault(group, []).append(member)

    def leave(self, group: str, member: object) -> None:
        """Remove a member; the next one takes over its partitions."""
        self._members[group].remove(member)
        self.notify()

    def owns(self, group: str, member: object) -> bool:
        """Whether ``member`` consumes the group's partitions now."""
        members = self._members.get(group, [])
        return bool(members) and members[0] is member

    def change_signal(self) -> asyncio.Event:
        """An event set at the next change; take it before looking, then wait on it."""
        return self._changed

    def notify(self) -> None:
        """Wake everyone waiting for a change."""
        self._changed.set()
        self._changed = asyncio.Event()


class InMemoryBus(Bus):
    """The transport port over an ``InMemoryBroker``."""

    def __init__(
        self,
        *,
        service: str,
        broker: InMemoryBroker | None = None,
        topics: Sequence[str] = (),
        partitions: int = 4,
        retry: RetryPolicy | None = None,
        drain_timeout_s: float = 30.0,
        signer: Signer | None = None,
        max_record_bytes: int = 1_000_000,
    ) -> None:
        """Pass the same ``broker`` to several buses to let them talk to each other."""
        self.broker = broker or InMemoryBroker(default_partitions=partitions)
        self._service = service
        self._source = source_for(service)
        self._topics = tuple(topics)
        self._partitions = partitions
        self._retry = retry or RetryPolicy()
        self._drain_timeout_s = drain_timeout_s
        self._tasks: list[asyncio.Task[None]] = []
        self._signer = signer
        self._max_record_bytes = max_record_bytes
        self._stuck: dict[str, tuple[str, float]] = {}
        self._stopping = asyncio.Event()
        self._started = False

    async def start(self) -> None:
        """Create the declared topics and their DLQs."""
        self._stopping = asyncio.Event()
        for topic in with_dead_letter_topics(self._topics):
            self.broker.create_topic(topic, self._partitions)
        self._started = True

    async def stop(self) -> None:
        """Let in-flight handlers finish (up to the drain timeout), then stop consuming."""
        self._stopping.set()
        self.broker.notify()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self._drain_timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._started = False

    async def publish(
        self,
        topic: str,
        message: Message,
        *,
        key: str,
        ce_id: str | None = None,
        subject: str | None = None,
        headers: Mapping[str, bytes] | None = None,
    ) -> None:
        """Append one message to its topic."""
        self._require_started()
        await traced_publish(
            self._send,
            topic,
            message,
            key=key,
            source=self._source,
            ce_id=ce_id,
            subject=subject,
            headers=headers,
            signer=self._signer,
            max_record_bytes=self._max_record_bytes,
        )

    def health(self) -> dict[str, object]:
        """Same shape as ``KafkaBus.health()``."""
        now = time.monotonic()
        return {
            "consumers": len(self._tasks),
            "stuck_partitions": {
                where: {"reason": reason, "for_s": round(now - since, 1)}
                for where, (reason, since) in self._stuck.items()
            },
        }

    def _report_stuck(self, where: str, reason: str | None) -> None:
        if reason is None:
            self._stuck.pop(where, None)
        else:
            self._stuck.setdefault(where, (reason, time.monotonic()))

    async def subscribe(self, subscription: Subscription) -> None:
        """Consume the subscription's topics in the background until ``stop()``."""
        self._require_started()
        for topic in with_dead_letter_topics(subscription.topics):
            self.broker.create_topic(topic, self._partitions)
        task = asyncio.create_task(
            self._consume(subscription), name=f"consume:{subscription.group}"
        )
        self._tasks.append(task)

    def inject_raw(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> RawRecord:
        """Append a record as-is (no envelope, no validation): how tests send garbage."""
        raw_key = key.encode() if isinstance(key, str) else key
        return self.broker.append(topic, raw_key, value, headers)

    def records(self, topic: str) -> list[RawRecord]:
        """Every record of ``topic`` (dead letters included when ``topic`` is a DLQ)."""
        return self.broker.records(topic)

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("InMemoryBus used before start()")

    async def _send(self, topic: str, envelope: Envelope) -> None:
        self.broker.append(topic, envelope.key, envelope.value, envelope.headers)

    async def _dead_letter(self, letter: DeadLetter) -> bool:
        self.broker.append(letter.topic, letter.key, letter.value, letter.headers)
        return True

    async def _consume(self, subscription: Subscription) -> None:
        member = object()
        self.broker.join(subscription.group, member)
        try:
            while not self._stopping.is_set():
                changed = self.broker.change_signal()
                if not await self._consume_available(subscription, member):
                    await changed.wait()
        finally:
            self.broker.leave(subscription.group, member)

    async def _consume_available(self, subscription: Subscription, member: object) -> bool:
        """One pass over the partitions, one record each; False when there was nothing."""
        if not self.broker.owns(subscription.group, member):
            return False
        progressed = False
        group = subscription.group
        for topic in subscription.topics:
            for partition in range(self.broker.partitions_for(topic)):
                record = self.broker.next_record(group, topic, partition)
                if record is None:
                    continue
                if self._stopping.is_set():
                    return True
                done = await process_record(
                    record,
                    subscription,
                    retry=self._retry,
                    dead_letter=self._dead_letter,
                    stopping=self._stopping,
                    max_record_bytes=self._max_record_bytes,
                    on_wait=functools.partial(self._report_stuck, f"{topic}[{partition}]"),
                )
                if not done:
                    return True
                self.broker.commit(group, topic, partition, record.offset + 1)
                progressed = True
        return progressed
