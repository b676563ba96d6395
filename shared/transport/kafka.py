"""``KafkaBus``: the transport port over aiokafka, for any Kafka-protocol broker (Tansu included).

Producer: ``acks="all"``; idempotent where the broker hands out producer ids (Apache Kafka, not
Tansu: asked once at start), never transactional. Delivery is at-least-once end to end (a
process can die between its effect and its commit), so consumers dedupe by ``ce_id``.
Consumers: one group per service, ``enable_auto_commit=False``,
``auto_offset_reset="earliest"``; each record's offset is committed only after its handler
returned (or it was dead-lettered). Commits leave the handling path: the offsets handled are
committed together at most every ``commit_interval_ms`` (and before partitions are revoked and
when the bus stops), so a busy consumer costs the broker a few commits a second, not one per
fetch; a crash redelivers at most that interval's records, which consumers dedupe. Records of
one partition are handled in order; the partitions of one fetch are handled concurrently. A
handler that raises is retried on the same record per ``RetryPolicy``, then the record is
dead-lettered (``handler-error``).

Sizes: ``max_record_bytes`` bounds what is produced (refused before sending) and consumed (an
oversized record is dead-lettered with its value cut). A dead letter the broker still refuses as
too large is cut and sent again, so no record can hold its partition. A partition that cannot
move (its dead letter cannot be written, or its handler waits for a dependency) is logged once
and reported by ``health()`` until it moves again.

Forgetful brokers: every ``broker_check_s`` a ``BrokerWatch`` re-creates any topic the broker
lost and compares the group offsets with what this process committed; a loss is a *reset*,
told to the listeners (``add_reset_listener``), which re-drive from the event store.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, UnknownError

from schemas.base import Message
from shared.auth import Signer
from shared.settings import KafkaTuning
from shared.transport.admin import ensure_topics, leave_group, supports_idempotence
from shared.transport.broker_watch import BrokerReset, BrokerWatch
from shared.transport.dlq import DeadLetter, RetryPolicy, truncated
from shared.transport.envelope import Envelope, RawRecord, source_for
from shared.transport.pipeline import process_record, stopped_within, traced_publish
from shared.transport.port import Bus, Subscription

__all__ = ["KafkaBus", "ResetListener"]

#: Told that the broker forgot (topics or committed offsets), with the ``time.monotonic()``
#: since which anything published may be lost; the supervisor re-drives from the store.
ResetListener = Callable[[BrokerReset], Awaitable[None]]

log = logging.getLogger("agentlog.transport")

# How long one fetch may wait for records before the loop looks at the stop flag again; the
# wait is also cut short by stop(), so this only bounds idle wake-ups.
_POLL_TIMEOUT_MS = 1000
_FETCH_ERROR_PAUSE_S = 1.0
_DLQ_RETRY_PAUSE_S = 0.5
# A stuck partition is logged when it gets stuck, then at most this often.
_STUCK_LOG_EVERY_S = 60.0
# A fetch's wait on a broker that answers as soon as records arrive: long, since data ends it.
_LONG_POLL_MS = 500
# "Answer when this much is there, or when the wait is over": far more than a wait collects.
_BATCHED_FETCH_MIN_BYTES = 1024 * 1024
_UNKNOWN_ERROR_RETRIES = 50
_UNKNOWN_ERROR_PAUSE_S = 0.02
# Room for the protocol's own framing around a record of max_record_bytes.
_REQUEST_OVERHEAD_BYTES = 64 * 1024


@dataclass
class _Consumer:
    subscription: Subscription
    client: AIOKafkaConsumer
    task: asyncio.Task[None] | None = None
    #: What this process last committed per partition: the broker must never have less.
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    #: Handled, not yet committed: the next offset per partition.
    pending: dict[TopicPartition, int] = field(default_factory=dict)
    commit_wanted: asyncio.Event = field(default_factory=asyncio.Event)
    #: One commit at a time per consumer, so offsets reach the broker in order.
    commit_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    committer: asyncio.Task[None] | None = None


class _CommitBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base
    """Commits what was handled before a rebalance gives the partitions to another member."""

    def __init__(self, flush: Callable[[], Awaitable[None]]) -> None:
        self._flush = flush

    async def on_partitions_revoked(self, revoked: object) -> None:
        await self._flush()

    async def on_partitions_assigned(self, assigned: object) -> None:
        return None


class KafkaBus(Bus):
    """Publish and consume agentlog messages on a Kafka-protocol broker."""

    def __init__(
        self,
        bootstrap: str,
        *,
        service: str,
        tuning: KafkaTuning | None = None,
        topics: Sequence[str] = (),
        partitions: int = 4,
        client_id: str | None = None,
        retry: RetryPolicy | None = None,
        drain_timeout_s: float = 30.0,
        signer: Signer | None = None,
        max_record_bytes: int = 1_000_000,
    ) -> None:
        """``topics`` (and their DLQs) are created by ``start()``; ``drain_timeout_s`` bounds how
        long ``stop()`` waits for in-flight handlers before cancelling them (uncommitted);
        ``signer`` signs every record published."""
        self._bootstrap = bootstrap
        self._service = service
        self._source = source_for(service)
        self._tuning = tuning or KafkaTuning()
        self._topics = tuple(topics)
        self._partitions = partitions
        self._client_id = client_id or f"agentlog-{service}"
        self._retry = retry or RetryPolicy()
        self._drain_timeout_s = drain_timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._consumers: list[_Consumer] = []
        self._stopping = asyncio.Event()
        self._signer = signer
        self._max_record_bytes = max_record_bytes
        #: "topic[partition]" → why it cannot move, and since when (monotonic seconds).
        self._stuck: dict[str, tuple[str, float]] = {}
        self._stuck_logged: dict[str, float] = {}
        #: (group, topic-partition) → the next offset to handle there, for ``consumer_lag``.
        self._next_offsets: dict[tuple[str, TopicPartition], int] = {}
        self._watch = BrokerWatch(
            bootstrap, partitions=partitions, tuning=self._tuning, client_id=self._client_id
        )
        self._watch_task: asyncio.Task[None] | None = None
        self._check_now = asyncio.Event()
        self._reset_listeners: list[ResetListener] = []
        #: How many times this process found that the broker forgot (``health()`` shows it).
        self.resets = 0
        #: Whether the producer is idempotent (the broker hands out producer ids).
        self.idempotent = False
        self._long_poll = False

    async def start(self) -> None:
        """Create missing topics and their DLQs, then connect the producer."""
        if self._producer is not None:
            return
        self._stopping = asyncio.Event()
        await self._ensure(self._topics)
        self._watch.expect(self._topics)
        # Idempotence where the broker supports it: a retried send is then written once.
        self.idempotent = await supports_idempotence(
            self._bootstrap, tuning=self._tuning, client_id=self._client_id
        )
        # A broker with producer ids implements the whole protocol, long-poll fetches included
        # (Tansu does neither); an explicit AGENTLOG_KAFKA_FETCH_MAX_WAIT_MS always wins.
        self._long_poll = (
            self.idempotent and "fetch_max_wait_ms" not in self._tuning.model_fields_set
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=self.idempotent,
            linger_ms=self._tuning.linger_ms,
            max_batch_size=self._tuning.max_batch_size,
            request_timeout_ms=self._tuning.request_timeout_ms,
            max_request_size=self._max_record_bytes + _REQUEST_OVERHEAD_BYTES,
        )
        await producer.start()
        self._producer = producer
        self._watch_task = asyncio.create_task(self._watch_broker(), name="broker-watch")
        self._watch_task.add_done_callback(_log_crash)

    async def stop(self) -> None:
        """Finish in-flight records (up to the drain timeout), commit, leave groups, flush."""
        self._stopping.set()
        if self._watch_task is not None:
            watch, self._watch_task = self._watch_task, None
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        await self._watch.close()
        tasks = [c.task for c in self._consumers if c.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._drain_timeout_s)
            for task in pending:
                log.warning("handler still running after the drain timeout; cancelling it")
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for consumer in self._consumers:
            if consumer.committer is not None:
                consumer.committer.cancel()
                await asyncio.gather(consumer.committer, return_exceptions=True)
            await self._flush_commits(consumer)
            await self._stop_consumer(consumer)
        self._consumers.clear()
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

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
        """Publish one message and wait for the broker's acknowledgement."""
        await self._encode_and(self._send, topic, message, key, ce_id, subject, headers)

    async def publish_queued(
        self,
        topic: str,
        message: Message,
        *,
        key: str,
        ce_id: str | None = None,
        subject: str | None = None,
        headers: Mapping[str, bytes] | None = None,
    ) -> Awaitable[object]:
        """Queue one message in the producer; the awaitable is its acknowledgement.

        aiokafka sends one request per broker at a time and keeps each partition's records in
        the order they were queued (the idempotent producer keeps it across retries too), so
        queued messages of one key arrive in order, and all that queue while a request is out
        travel in the next one. A Tansu "unknown error" is not retried here: the caller's
        await raises it, and the outbox relay publishes its batch again.
        """
        queued: list[Awaitable[object]] = []

        async def queue(topic: str, envelope: Envelope) -> None:
            if self._producer is None:
                raise RuntimeError("KafkaBus.publish_queued() before start()")
            queued.append(
                await self._producer.send(
                    topic, envelope.value, key=envelope.key, headers=envelope.headers
                )
            )

        await self._encode_and(queue, topic, message, key, ce_id, subject, headers)
        return queued[0]

    async def _encode_and(
        self,
        send: Callable[[str, Envelope], Awaitable[None]],
        topic: str,
        message: Message,
        key: str,
        ce_id: str | None,
        subject: str | None,
        headers: Mapping[str, bytes] | None,
    ) -> None:
        """Encode and sign ``message`` as this bus does, then hand it to ``send``."""
        await traced_publish(
            send,
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
        """What a status page shows: consumers, and every partition that cannot move."""
        now = time.monotonic()
        return {
            "consumers": [c.subscription.group for c in self._consumers],
            "broker_resets": self.resets,
            "idempotent_producer": self.idempotent,
            "stuck_partitions": {
                where: {"reason": reason, "for_s": round(now - since, 1)}
                for where, (reason, since) in self._stuck.items()
            },
        }

    def consumer_lag(self) -> dict[tuple[str, str, int], int]:
        """Records each group has yet to handle, by (group, topic, partition): the highwater of
        the consumer's last fetch minus the next offset to handle. A partition this process
        has handled nothing from yet is left out (its position here is not known)."""
        lag: dict[tuple[str, str, int], int] = {}
        for consumer in self._consumers:
            group = consumer.subscription.group
            for tp in consumer.client.assignment():
                highwater = consumer.client.highwater(tp)
                next_offset = self._next_offsets.get((group, tp))
                if highwater is not None and next_offset is not None:
                    lag[(group, tp.topic, tp.partition)] = max(0, highwater - next_offset)
        return lag

    def _report_stuck(self, where: str, reason: str | None) -> None:
        if reason is None:
            if self._stuck.pop(where, None) is not None:
                log.warning("partition %s moves again", where)
            self._stuck_logged.pop(where, None)
            return
        since = self._stuck.get(where, (reason, time.monotonic()))[1]
        self._stuck[where] = (reason, since)
        last = self._stuck_logged.get(where)
        if last is None or time.monotonic() - last >= _STUCK_LOG_EVERY_S:
            self._stuck_logged[where] = time.monotonic()
            log.error("partition %s is stuck: %s", where, reason)

    async def subscribe(self, subscription: Subscription) -> None:
        """Join ``subscription.group`` and handle its topics in the background until ``stop()``."""
        if self._producer is None:
            raise RuntimeError("KafkaBus.subscribe() before start()")
        await self._ensure(subscription.topics)
        self._watch.expect(subscription.topics)
        client = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            group_id=subscription.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._tuning.session_timeout_ms,
            heartbeat_interval_ms=self._tuning.heartbeat_interval_ms,
            rebalance_timeout_ms=self._tuning.rebalance_timeout_ms,
            fetch_max_wait_ms=self._fetch_wait_ms(subscription),
            fetch_min_bytes=self._fetch_min_bytes(subscription),
            request_timeout_ms=self._tuning.request_timeout_ms,
            # At least one whole record per fetch, so an oversized one is seen and parked.
            max_partition_fetch_bytes=self._max_record_bytes + _REQUEST_OVERHEAD_BYTES,
        )
        consumer = _Consumer(subscription, client)
        client.subscribe(
            list(subscription.topics),
            listener=_CommitBeforeRevoke(functools.partial(self._flush_commits, consumer)),
        )
        await client.start()
        consumer.task = asyncio.create_task(
            self._consume(consumer), name=f"consume:{subscription.group}"
        )
        consumer.task.add_done_callback(_log_crash)
        if self._tuning.commit_interval_ms > 0:
            consumer.committer = asyncio.create_task(
                self._commit_every_interval(consumer), name=f"commit:{subscription.group}"
            )
            consumer.committer.add_done_callback(_log_crash)
        self._consumers.append(consumer)

    def _fetch_wait_ms(self, subscription: Subscription) -> int:
        """How long one fetch waits for records. A broker that answers as soon as records
        arrive (Apache Kafka) gets a long poll: no latency, few requests. One that answers only
        when the wait runs out (Tansu) gets the short setting, or the subscription's own."""
        if self._long_poll:
            return subscription.fetch_wait_ms or _LONG_POLL_MS
        return subscription.fetch_wait_ms or self._tuning.fetch_max_wait_ms

    def _fetch_min_bytes(self, subscription: Subscription) -> int:
        """A latency-tolerant feed on a long-polling broker collects records for its whole
        wait (one answer per wait, not one per record: the audit feed every worker follows has
        every event of every workflow); everything else is answered at its first record."""
        if self._long_poll and subscription.fetch_wait_ms is not None:
            return _BATCHED_FETCH_MIN_BYTES
        return 1

    async def _stop_consumer(self, consumer: _Consumer) -> None:
        # The member id lives only on aiokafka's private coordinator; read it defensively.
        coordinator = getattr(consumer.client, "_coordinator", None)
        generation = getattr(coordinator, "generation", None)
        member_id = getattr(coordinator, "member_id", "")
        await consumer.client.stop()  # sends LeaveGroup itself from generation 1 on
        if generation == 0 and member_id:
            await leave_group(
                self._bootstrap,
                consumer.subscription.group,
                member_id,
                tuning=self._tuning,
                client_id=self._client_id,
            )

    async def _ensure(self, topics: Sequence[str]) -> None:
        await ensure_topics(
            self._bootstrap,
            topics,
            partitions=self._partitions,
            tuning=self._tuning,
            client_id=self._client_id,
        )

    async def _send(self, topic: str, envelope: Envelope) -> None:
        for attempt in range(_UNKNOWN_ERROR_RETRIES + 1):
            if self._producer is None:
                raise RuntimeError("KafkaBus.publish() before start()")
            try:
                await self._producer.send_and_wait(
                    topic, envelope.value, key=envelope.key, headers=envelope.headers
                )
                return
            except UnknownError:
                # Tansu, after a restart, still holds files of records sent while a topic was
                # missing; a write that lands on one fails like this and moves the offset on,
                # so the next attempt succeeds. Kafka itself does not answer a produce so.
                if attempt == _UNKNOWN_ERROR_RETRIES:
                    raise
                await asyncio.sleep(_UNKNOWN_ERROR_PAUSE_S)

    async def _consume(self, consumer: _Consumer) -> None:
        stop_requested = asyncio.ensure_future(self._stopping.wait())
        fetch: asyncio.Future[dict[TopicPartition, list[ConsumerRecord]]] | None = None
        try:
            while not self._stopping.is_set():
                fetch = asyncio.ensure_future(consumer.client.getmany(timeout_ms=_POLL_TIMEOUT_MS))
                await asyncio.wait({fetch, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():
                    break  # stopping; records fetched but not handled stay uncommitted
                try:
                    batches = fetch.result()
                except KafkaError as exc:
                    log.error("fetch failed: %r", exc, extra={"group": consumer.subscription.group})
                    await stopped_within(self._stopping, _FETCH_ERROR_PAUSE_S)
                    continue
                await asyncio.gather(
                    *(self._drain(consumer, tp, records) for tp, records in batches.items())
                )
        finally:
            stop_requested.cancel()
            if fetch is not None and not fetch.done():
                fetch.cancel()
                with contextlib.suppress(asyncio.CancelledError, KafkaError):
                    await fetch

    async def _drain(
        self, consumer: _Consumer, tp: TopicPartition, records: list[ConsumerRecord]
    ) -> None:
        group = consumer.subscription.group
        if records:
            self._next_offsets[(group, tp)] = records[0].offset
        # One commit per fetched batch, after its last handled record: a commit is a broker
        # round trip, and a crash mid-batch only redelivers records whose effects are
        # idempotent (recorded once by ce_id / tracking key).
        handled: int | None = None
        for record in records:
            if self._stopping.is_set():
                break
            raw = RawRecord(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                value=record.value,
                headers=tuple(record.headers),
                timestamp_ms=record.timestamp if record.timestamp >= 0 else None,
            )
            where = f"{tp.topic}[{tp.partition}]"
            done = await process_record(
                raw,
                consumer.subscription,
                retry=self._retry,
                dead_letter=self._dead_letter,
                stopping=self._stopping,
                max_record_bytes=self._max_record_bytes,
                on_wait=functools.partial(self._report_stuck, where),
            )
            if not done:
                break
            self._next_offsets[(group, tp)] = record.offset + 1
            handled = record.offset + 1
        if handled is not None:
            consumer.pending[tp] = handled
            if consumer.committer is None:  # commit_interval_ms = 0: commit every fetch
                await self._flush_commits(consumer)
            else:
                consumer.commit_wanted.set()

    async def _commit_every_interval(self, consumer: _Consumer) -> None:
        """Commit what was handled, then wait out the interval; until stop() (which commits
        the rest itself)."""
        interval_s = self._tuning.commit_interval_ms / 1000
        while not self._stopping.is_set():
            wanted = asyncio.ensure_future(consumer.commit_wanted.wait())
            try:
                await asyncio.wait({wanted}, timeout=_POLL_TIMEOUT_MS / 1000)
            finally:
                wanted.cancel()
            if not consumer.commit_wanted.is_set():
                continue
            consumer.commit_wanted.clear()
            await self._flush_commits(consumer)
            await stopped_within(self._stopping, interval_s)

    async def _flush_commits(self, consumer: _Consumer) -> None:
        """Commit every handled offset not committed yet (one request for all partitions)."""
        async with consumer.commit_lock:
            offsets, consumer.pending = consumer.pending, {}
            if offsets:
                await self._commit(consumer, offsets)

    async def _commit(self, consumer: _Consumer, offsets: dict[TopicPartition, int]) -> None:
        fields = {"group": consumer.subscription.group}
        where = ", ".join(f"{tp.topic}[{tp.partition}]@{offset}" for tp, offset in offsets.items())
        try:
            # commit() blocks forever while the broker is down; never let it hang the partition.
            await asyncio.wait_for(
                consumer.client.commit(offsets), timeout=self._tuning.commit_timeout_s
            )
            consumer.committed.update(offsets)
        except asyncio.CancelledError:
            for tp, offset in offsets.items():  # stop() commits them after the cancel
                consumer.pending.setdefault(tp, offset)
            raise
        except TimeoutError:
            log.error("commit timed out; is the broker up? (%s)", where, extra=fields)
            # Not kept for later: a broker that comes back empty would get offsets of the log it
            # forgot, and skip what is published anew. The next handled record commits again.
            self._check_now.set()  # a broker that forgot its topics fails commits like this
        except KafkaError as exc:
            # Typically a rebalance moved the partition: its new owner redelivers the record.
            log.warning("commit of %s failed: %r", where, exc, extra=fields)

    @property
    def broker_available(self) -> bool:
        """False while the broker cannot be reached (the last check failed)."""
        return self._watch.available

    def add_reset_listener(self, listener: ResetListener) -> None:
        """Call ``listener`` each time this process finds that the broker forgot."""
        self._reset_listeners.append(listener)

    async def _watch_broker(self) -> None:
        """Check the broker every ``broker_check_s`` (sooner after a failed commit)."""
        while not self._stopping.is_set():
            waiter = asyncio.ensure_future(self._check_now.wait())
            try:
                await asyncio.wait({waiter}, timeout=self._tuning.broker_check_s)
            finally:
                waiter.cancel()
            self._check_now.clear()
            if self._stopping.is_set():
                return
            committed = {c.subscription.group: dict(c.committed) for c in self._consumers}
            try:
                reset = await self._watch.check(committed)
            except (KafkaError, OSError, TimeoutError) as exc:
                # Away, not forgetful: the clients reconnect by themselves. Said once a window.
                log.warning("cannot check the broker: %r", exc)
                continue
            if reset is not None:
                await self._on_reset(reset)

    async def _on_reset(self, reset: BrokerReset) -> None:
        self.resets += 1
        log.warning(
            "the broker lost %s (restarted with empty storage?); topics are created again, "
            "groups re-join from the earliest offset, and %d listener(s) re-drive",
            reset.describe(),
            len(self._reset_listeners),
        )
        for consumer in self._consumers:
            # The group's offsets are gone: what was committed here no longer says anything,
            # and offsets handled but not yet committed belong to the forgotten log.
            consumer.committed.clear()
            consumer.pending.clear()
        for listener in self._reset_listeners:
            try:
                await listener(reset)
            except Exception:  # one failing listener must not keep the others from re-driving
                log.exception("a broker-reset listener failed")

    async def _dead_letter(self, letter: DeadLetter) -> bool:
        # Committing a record whose dead letter was not written would lose it, so keep
        # trying until the broker takes it or the bus stops (then it stays uncommitted).
        origin = letter.origin
        where = f"{origin.topic}[{origin.partition}]"
        try:
            while True:
                try:
                    if self._producer is None:
                        return False
                    await self._producer.send_and_wait(
                        letter.topic, letter.value, key=letter.key, headers=letter.headers
                    )
                    return True
                except MessageSizeTooLargeError:
                    cut = truncated(letter)
                    if cut is letter:
                        # Even the cut dead letter is refused: nothing left to try but waiting.
                        self._report_stuck(where, f"{letter.topic} refuses even a cut record")
                        if await stopped_within(self._stopping, _STUCK_LOG_EVERY_S):
                            return False
                    letter = cut
                except KafkaError as exc:
                    self._report_stuck(where, f"cannot write to {letter.topic}: {exc!r}")
                    if await stopped_within(self._stopping, _DLQ_RETRY_PAUSE_S):
                        return False
        finally:
            self._report_stuck(where, None)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("consumer %s crashed", task.get_name(), exc_info=task.exception())
