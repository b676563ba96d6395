"""Fixtures every end-to-end module shares: the service environment, the fleet, a producer.

A module that sets ``BROKERS = ("tansu", "kafka")`` runs once per broker (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from shared.runtime.processes import ServiceProcesses
from tests.conftest import StackInfo
from tests.e2e.corpus import write_corpus

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def service_env(stack_info: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for the service processes: the session stack and a designed corpus."""
    corpus = write_corpus(tmp_path_factory.mktemp("corpus"))
    return {
        "AGENTLOG_DATABASE_URL": stack_info.database_url,
        "AGENTLOG_KAFKA_BOOTSTRAP": stack_info.kafka_bootstrap,
        "AGENTLOG_AUTH_KEYS_DIR": str(stack_info.keys_dir),
        "AGENTLOG_DOCS_DIR": str(corpus),
        "AGENTLOG_MEMORY_LIMIT_CHARS": "3000",
        "AGENTLOG_MANIFEST_BUDGET_CHARS": "1500",
        "AGENTLOG_TASK_TIMEOUT_S": "20",
    }


@pytest.fixture(scope="module")
def services(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcesses]:
    """The five services, each its own process, for the whole module."""
    fleet = ServiceProcesses(service_env, tmp_path_factory.mktemp("logs"), cwd=REPO)
    fleet.start()
    try:
        yield fleet
    finally:
        codes = fleet.stop()
        assert all(code == 0 for code in codes.values()), f"unclean service exits: {codes}"


@pytest.fixture
async def producer(stack_info: StackInfo) -> AsyncIterator[AIOKafkaProducer]:
    """A plain aiokafka producer: what any upstream system would use."""
    producer = AIOKafkaProducer(bootstrap_servers=stack_info.kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()
