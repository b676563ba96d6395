"""The production backends in containers: Postgres 16 and Apache Kafka (KRaft) via testcontainers.

The embedded stack covers these adapters in every run; this module repeats the event store
contract on the Postgres version docker-compose.yml deploys, and a KafkaBus round trip on real
Kafka with the client timings compose sets. It needs a Docker engine: where none answers (as on
our development machines) every test here is skipped, and the skip says why.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from shared.eventstore import EventStore
from tests.contracts.eventstore import EventStoreContract, StoreFactory

POSTGRES_IMAGE = "postgres:16"  # as in docker-compose.yml
# testcontainers' Kafka module drives Confluent's image (its start script needs it); KRaft mode.
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"


def _docker_unavailable() -> str | None:
    """Why no container can be started here, or None when a Docker engine answers."""
    try:
        import docker

        docker.from_env().ping()
    except Exception as error:  # any failure (no socket, no permission, no daemon) means skip
        return (
            f"no Docker engine answers ({type(error).__name__}: {error}); "
            "the same adapters run on the embedded stack in tests/integration"
        )
    return None


_NO_DOCKER = _docker_unavailable()
# Skipped (with the reason shown by -ra) only where no Docker engine answers; runs where one does.
pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(_NO_DOCKER is not None, reason=_NO_DOCKER or ""),
]


@pytest.fixture(scope="module")
def postgres_dsn() -> Iterator[str]:
    """A Postgres 16 container's DSN (asyncpg form), for this module."""
    from testcontainers.community.postgres import PostgresContainer

    with PostgresContainer(POSTGRES_IMAGE, driver=None) as container:
        yield container.get_connection_url()


@pytest.fixture(scope="module")
def kafka_bootstrap() -> Iterator[str]:
    """A single-node KRaft Kafka container's bootstrap address, for this module."""
    from testcontainers.community.kafka import KafkaContainer

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as container:
        yield container.get_bootstrap_server()


class TestPostgresEventStoreInContainer(EventStoreContract):
    """The event store contract on the Postgres version production runs."""

    @pytest.fixture
    async def make_store(self, postgres_dsn: str) -> AsyncIterator[StoreFactory]:
        """Stores on one fresh schema per test, dropped afterwards."""
        # Imported here so that collection does not depend on the adapter module.
        from shared.eventstore.postgres import PostgresEventStore

        schema = f"t_{uuid.uuid4().hex}"
        stores: list[PostgresEventStore] = []

        async def factory() -> EventStore:
            store = PostgresEventStore(postgres_dsn, schema=schema, pool_max=12)
            stores.append(store)
            await store.start()
            return store

        yield factory
        for store in stores:
            await store.stop()
        conn = await asyncpg.connect(postgres_dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    async def test_container_runs_postgres_16(self, postgres_dsn: str) -> None:
        """The container is the major version docker-compose.yml deploys."""
        conn = await asyncpg.connect(postgres_dsn)
        try:
            version = await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()
        assert str(version).startswith("16")


async def test_kafka_bus_round_trip_on_apache_kafka(kafka_bootstrap: str) -> None:
    """KafkaBus, tuned as in docker-compose.yml, delivers one workflow's messages in order."""
    from shared.settings import KafkaTuning
    from shared.transport import KafkaBus, Subscription
    from tests.contracts.transport import Collector, goal

    # Kafka rejects sessions under group.min.session.timeout.ms (6 s): compose's timings.
    tuning = KafkaTuning(
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
        rebalance_timeout_ms=10_000,
        fetch_max_wait_ms=100,
    )
    topic, group = f"tc.{uuid.uuid4().hex[:12]}", f"agentlog.tc-{uuid.uuid4().hex[:8]}"
    sent = [goal(f"step {i:02d}", "wf-tc") for i in range(5)]
    seen = Collector()
    async with KafkaBus(kafka_bootstrap, service="tc", tuning=tuning, topics=[topic]) as bus:
        await bus.subscribe(Subscription([topic], group, seen, "tc"))
        for message in sent:
            await bus.publish(topic, message, key="wf-tc")
        deliveries = await seen.wait_count(len(sent))
    assert [delivery.message for delivery in deliveries] == sent
    assert {delivery.key for delivery in deliveries} == {"wf-tc"}
