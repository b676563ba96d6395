"""Noticing that the broker forgot: topics that vanished, committed offsets that went back.

A broker with memory storage (the embedded Tansu) forgets every topic, offset and group when it
restarts; a Kafka cluster can lose them to an operator's mistake or a disaster restore. The
clients reconnect on their own, but nobody re-creates the topics: the broker keeps answering
metadata for them and even acknowledges records sent to them, which are then gone. So every
process checks, every few seconds, with one long-lived admin connection:

* every topic it uses is **created again** (CreateTopics, not a listing: a forgetful broker still
  lists topics it no longer has). "Already exists" is the normal answer; a topic this process
  had seen that is created anew means the broker forgot;
* each of its consumer groups still has at least the offsets this process committed (an offset
  that went back, or vanished, means the group's state was lost; another member moving a
  partition on only ever moves it forward).

Either finding is a *reset*: the bus re-joins and tells its listeners, and the supervisor
re-drives its open work from the event store (the store is the truth).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from shared.settings import KafkaTuning
from shared.transport.admin import with_dead_letter_topics

__all__ = ["BrokerReset", "BrokerWatch"]

log = logging.getLogger("agentlog.transport")


@dataclass(frozen=True)
class BrokerReset:
    """What a check found lost, and when the broker was last known to have it all."""

    #: Topics this process had seen that the broker no longer had (now created again).
    topics: tuple[str, ...]
    #: "group topic[partition]" whose committed offset went back or vanished.
    offsets: tuple[str, ...]
    #: ``time.monotonic()`` at the start of the last check that found nothing lost: anything
    #: published after it may be gone.
    intact_since: float

    def describe(self) -> str:
        """One line for the log."""
        parts = []
        if self.topics:
            parts.append(f"topics {', '.join(self.topics)}")
        if self.offsets:
            parts.append(f"committed offsets of {', '.join(self.offsets)}")
        return " and ".join(parts)


class BrokerWatch:
    """Checks that the broker still has this process's topics and committed offsets."""

    def __init__(
        self,
        bootstrap: str,
        *,
        partitions: int,
        tuning: KafkaTuning,
        client_id: str,
    ) -> None:
        self._bootstrap = bootstrap
        self._partitions = partitions
        self._tuning = tuning
        self._client_id = client_id
        self._admin: AIOKafkaAdminClient | None = None
        self._topics: set[str] = set()
        self._intact_since = time.monotonic()
        #: Offsets found lost by the previous check: a loss counts once seen twice in a row,
        #: because a Kafka broker that just restarted answers "no offset" while it loads them.
        self._suspect: set[str] = set()
        #: False from a check that could not reach the broker until one that could.
        self.available = True

    def expect(self, topics: Iterable[str]) -> None:
        """Topics (and their DLQs) this process uses and has seen exist."""
        self._topics.update(with_dead_letter_topics(topics))

    async def close(self) -> None:
        """Drop the admin connection."""
        if self._admin is not None:
            admin, self._admin = self._admin, None
            await admin.close()

    async def check(
        self, committed: Mapping[str, Mapping[TopicPartition, int]]
    ) -> BrokerReset | None:
        """One check; ``committed`` is, per group, what this process last committed.

        Raises ``KafkaError`` (or ``OSError``) when the broker cannot be asked: not a reset.
        """
        began = time.monotonic()
        try:
            admin = await self._connected()
            recreated = await self._recreate_missing(admin)
            seen = await self._lost_offsets(admin, committed)
        except BaseException:
            self.available = False
            raise
        self.available = True
        lost = sorted(set(seen) & self._suspect)
        self._suspect = set(seen)
        if not recreated and not lost:
            self._intact_since = began
            return None
        self._suspect = set()
        return BrokerReset(tuple(recreated), tuple(lost), self._intact_since)

    async def _connected(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._bootstrap,
                client_id=f"{self._client_id}-watch",
                # Short: a check that hangs for the client's full timeout says nothing sooner.
                request_timeout_ms=min(self._tuning.request_timeout_ms, 5000),
            )
            await admin.start()
            self._admin = admin
        return self._admin

    async def _recreate_missing(self, admin: AIOKafkaAdminClient) -> list[str]:
        if not self._topics:
            return []
        response = await admin.create_topics(
            [
                NewTopic(name, num_partitions=self._partitions, replication_factor=1)
                for name in sorted(self._topics)
            ]
        )
        created = []
        for name, code, message in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != TopicAlreadyExistsError.errno:
                raise for_code(code)(f"creating topic {name!r}: {message}")
        return created

    async def _lost_offsets(
        self,
        admin: AIOKafkaAdminClient,
        committed: Mapping[str, Mapping[TopicPartition, int]],
    ) -> list[str]:
        lost = []
        for group, ours in committed.items():
            if not ours:
                continue
            # partitions= is required: without it Tansu breaks the connection.
            theirs = await admin.list_consumer_group_offsets(group, partitions=list(ours))
            for tp, offset in ours.items():
                found = theirs.get(tp)
                if found is None or found.offset < offset:
                    lost.append(f"{group} {tp.topic}[{tp.partition}]")
        return lost
