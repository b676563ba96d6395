"""Chaos fixtures: a fresh fleet of service processes per test, the event store, a producer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from shared.eventstore.postgres import PostgresEventStore
from tests.chaos.harness import MAX_ATTEMPTS, SERVICE_DB_APP, TASK_TIMEOUT_S, Fleet, tagged_dsn
from tests.conftest import StackInfo
from tests.e2e.corpus import write_corpus

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chaos_env(stack_info: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Service settings: the session stack, the designed corpus, short task deadlines."""
    corpus = write_corpus(tmp_path_factory.mktemp("corpus"))
    return {
        "AGENTLOG_DATABASE_URL": tagged_dsn(stack_info.database_url, SERVICE_DB_APP),
        "AGENTLOG_KAFKA_BOOTSTRAP": stack_info.kafka_bootstrap,
        "AGENTLOG_DOCS_DIR": str(corpus),
        "AGENTLOG_MEMORY_LIMIT_CHARS": "3000",
        "AGENTLOG_MANIFEST_BUDGET_CHARS": "1500",
        "AGENTLOG_TASK_TIMEOUT_S": str(TASK_TIMEOUT_S),
        "AGENTLOG_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    }


@pytest.fixture
async def fleet(chaos_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Fleet]:
    """The five services as processes, each in its consumer group, stopped cleanly afterwards."""
    services = Fleet(chaos_env, tmp_path / "logs", REPO)
    services.start()
    try:
        await services.wait_ready()
        yield services
    finally:
        codes = services.stop()
    assert all(code == 0 for code in codes.values()), f"unclean exits: {codes}"


@pytest.fixture
async def store(stack_info: StackInfo) -> AsyncIterator[PostgresEventStore]:
    """The event store the services write: the test reads outcomes from it."""
    async with PostgresEventStore(stack_info.database_url) as events:
        yield events


@pytest.fixture
async def producer(stack_info: StackInfo) -> AsyncIterator[AIOKafkaProducer]:
    """A plain aiokafka producer, as an upstream system would use."""
    client = AIOKafkaProducer(bootstrap_servers=stack_info.kafka_bootstrap, acks="all")
    await client.start()
    yield client
    await client.stop()
