"""The transport port: publish messages, and consume them with at-least-once delivery.

Adapters: ``KafkaBus`` (aiokafka; any Kafka-protocol broker) and ``InMemoryBus`` (unit tests).
Both pass the same contract suite (tests/contracts/transport.py).

Delivery rules every adapter keeps:
- a consumer commits an offset only after its handler returned (the handler's durable effect
  is done), so a crash redelivers;
- a record that fails to decode or validate goes to ``<topic>.dlq`` with reason headers and the
  consumer moves on; it never stops the service nor blocks the partition.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from schemas.base import Message
from shared.auth import Authenticator, Principal
from shared.resource import AsyncResource

__all__ = [
    "Bus",
    "Delivery",
    "Handler",
    "RecordTooLargeError",
    "RejectedError",
    "Subscription",
    "TransientError",
]


class TransientError(Exception):
    """Raised by a handler whose dependency (database, broker) is unavailable right now.

    The bus retries the same record with backoff until the handler succeeds or the bus stops;
    such a record is never dead-lettered and never counts against the retry limit.
    """


class RejectedError(Exception):
    """Raised by a handler that refuses a well-formed message (a conflict, a stranger's result).

    The bus dead-letters the record at once with ``reason`` (a ``DeadLetterReason`` value) and
    moves on: retrying cannot make it acceptable.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class RecordTooLargeError(ValueError):
    """A message whose record would exceed ``max_record_bytes``; it is not sent."""


@dataclass(frozen=True)
class Delivery:
    """A decoded inbound message with its CloudEvents attributes and origin."""

    message: Message
    topic: str
    partition: int
    offset: int
    key: str | None
    ce_id: str
    ce_type: str
    ce_source: str
    ce_time: datetime | None
    ce_subject: str | None
    headers: Mapping[str, bytes] = field(default_factory=dict)
    #: Who signed the record, verified against the keyring; None when the subscription does
    #: not authenticate or accepts this type unsigned. Never taken from the payload.
    principal: Principal | None = None


Handler = Callable[[Delivery], Awaitable[None]]


class RawRecordLike(Protocol):
    """What ``Subscription.wants`` may look at: a record's headers, before any decoding."""

    @property
    def headers(self) -> tuple[tuple[str, bytes], ...]: ...


@dataclass(frozen=True)
class Subscription:
    """What a consumer group reads and who handles it."""

    topics: Sequence[str]
    group: str  # one group per service: agentlog.<service>
    handler: Handler
    service: str
    #: Verifies signatures and who may send what; None accepts any record (audit readers).
    authenticator: Authenticator | None = None
    #: Looks at a record before anything else (no decoding, no signature check); False skips
    #: it (committed, not handled). For a consumer that needs few of a topic's records.
    wants: Callable[[RawRecordLike], bool] | None = None
    #: Told about every record refused before the handler (after its dead letter is written):
    #: ``(key, ce_id, reason)``. Lets a consumer also record a refused attempt where it aimed.
    on_refused: Callable[[str | None, str | None, str], Awaitable[None]] | None = None
    #: Told about every record of this subscription written to a dead-letter topic:
    #: ``(origin topic, dlq_reason)``. How an interceptor counts dead letters (metrics).
    on_dead_letter: Callable[[str, str], None] | None = None
    #: For a feed that tolerates latency (the kill-switch's audit feed, human decisions): how
    #: long a fetch may wait, collecting records, before it answers. ``None``: as fast as the
    #: broker allows (a short wait on Tansu, which answers only when the wait runs out; a long
    #: poll answered at the first record on Kafka). Fewer fetches, less CPU on both ends.
    fetch_wait_ms: int | None = None


class Bus(AsyncResource):
    """Publish and consume agentlog messages over topics."""

    @abstractmethod
    async def start(self) -> None:
        """Connect and create any missing agentlog topics (and their DLQs)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop consumers (after in-flight handlers finish) and flush the producer."""

    @abstractmethod
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
        """Publish and wait for the broker's acknowledgement (acks=all).

        ``key`` is the workflow id (per-workflow ordering); ``ce_id`` defaults to a new UUID;
        set it to a deterministic id so consumers can dedupe redeliveries.
        """

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
        """Queue a message and return once it is queued, with an awaitable of its
        acknowledgement (acks=all; it raises what ``publish`` would).

        Messages queued one after another reach their partition in that order, so a sender
        with many messages for one key queues them all and then awaits every acknowledgement:
        one round trip for the lot instead of one each. This default publishes at once (the
        message is acknowledged when it returns); ``KafkaBus`` really queues.
        """
        await self.publish(topic, message, key=key, ce_id=ce_id, subject=subject, headers=headers)
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    @abstractmethod
    async def subscribe(self, subscription: Subscription) -> None:
        """Start consuming in the background until ``stop()``."""

    @abstractmethod
    def health(self) -> dict[str, object]:
        """What a status page shows: the consumers, and under ``stuck_partitions`` every
        partition that cannot move right now (``"topic[p]" → {"reason", "for_s"}``)."""
