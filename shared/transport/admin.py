"""Create agentlog's topics, and each one's dead-letter topic, before anything uses them.

Brokers auto-create unknown topics with their own default partition count (Tansu: 4), so every
topic is created explicitly at startup with the partition count agentlog asks for. Several
processes start at once; a topic another process created first is not an error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.protocol.group import LeaveGroupRequest
from aiokafka.protocol.transaction import InitProducerIdRequest

from schemas.topics import dlq_topic
from shared.settings import KafkaTuning

__all__ = ["ensure_topics", "leave_group", "supports_idempotence", "with_dead_letter_topics"]

log = logging.getLogger("agentlog.transport")


def with_dead_letter_topics(topics: Iterable[str]) -> list[str]:
    """``topics`` and their ``.dlq`` topics, without duplicates, in a stable order."""
    names: dict[str, None] = {}
    for topic in topics:
        names[topic] = None
        if not topic.endswith(".dlq"):
            names[dlq_topic(topic)] = None
    return list(names)


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    *,
    partitions: int,
    tuning: KafkaTuning | None = None,
    client_id: str | None = None,
) -> list[str]:
    """Create the missing ones of ``topics`` and their DLQs; return the names created here."""
    wanted = with_dead_letter_topics(topics)
    if not wanted:
        return []
    tuning = tuning or KafkaTuning()
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id=client_id or "agentlog-admin",
        request_timeout_ms=tuning.request_timeout_ms,
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in missing]
        )
    finally:
        await admin.close()
    created: list[str] = []
    for name, code, message in response.topic_errors:
        if code == 0:
            created.append(name)
        elif code != TopicAlreadyExistsError.errno:  # lost a race with another process: fine
            raise for_code(code)(f"creating topic {name!r}: {message}")
    if created:
        log.info("created topics %s", ", ".join(created), extra={"topics": created})
    return created


async def leave_group(
    bootstrap: str,
    group: str,
    member_id: str,
    *,
    tuning: KafkaTuning | None = None,
    client_id: str | None = None,
) -> None:
    """Take ``member_id`` out of ``group`` now, so the next member gets its partitions at once.

    aiokafka's consumer sends LeaveGroup on stop only from generation 1 up; Tansu numbers a
    group's first generation 0, so without this a stopped consumer lingers until its session
    times out and a successor's join waits seconds for it. Best effort: errors are logged.
    """
    tuning = tuning or KafkaTuning()
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap,
        client_id=client_id or "agentlog-admin",
        request_timeout_ms=tuning.request_timeout_ms,
    )
    try:
        await client.bootstrap()
        node = await client.coordinator_lookup(CoordinationType.GROUP, group)
        await client.send(node, LeaveGroupRequest(group, member_id))
    except KafkaError as exc:
        log.warning("leaving group %s failed: %r", group, exc, extra={"group": group})
    finally:
        await client.close()


async def supports_idempotence(
    bootstrap: str, *, tuning: KafkaTuning | None = None, client_id: str | None = None
) -> bool:
    """Whether the broker hands out producer ids, which an idempotent producer needs.

    Asked once, as a producer would (InitProducerId without a transactional id), so nothing is
    written: Apache Kafka answers with an id (or "loading", just after it started); Tansu
    answers UnknownError, and a producer that relied on it would fail its first send.
    """
    tuning = tuning or KafkaTuning()
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap,
        client_id=client_id or "agentlog-admin",
        request_timeout_ms=tuning.request_timeout_ms,
    )
    try:
        await client.bootstrap()
        node = client.get_random_node()
        # No transactional id (None), as aiokafka's own idempotent producer asks.
        response = await client.send(node, InitProducerIdRequest(None, 60_000))
        code = int(response.error_code)
        # A retriable answer (the coordinator still loading, just after a start) is a broker
        # that has producer ids, only not yet: the producer's own retries wait for it.
        return code == 0 or bool(for_code(code).retriable)
    except KafkaError:
        return False
    finally:
        await client.close()
