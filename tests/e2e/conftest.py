"""Fixtures every end-to-end module shares: the service environment, the fleet, a producer.

A module that sets ``BROKERS = ("tansu", "kafka")`` runs once per broker (tests/conftest.py).
Modules using the plain ``services`` fixture share one running fleet per stack (tests/e2e/
fleets.py): they run first, next to each other, and the fleet stops before any other test.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from shared.runtime.processes import ServiceProcesses
from tests.conftest import StackInfo
from tests.e2e.corpus import write_corpus
from tests.e2e.fleets import FleetPool

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SHARED_FLEET = "services"

_pool = FleetPool(REPO)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The designed corpus, written once (no test changes it; a module needing another
    corpus writes its own)."""
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def _fleet_state_dirs() -> dict[str, Path]:
    """One state dir per stack the session's fleets use, by the stack's broker address."""
    return {}


@pytest.fixture(scope="module")
def service_env(
    stack_info: StackInfo,
    corpus: Path,
    _fleet_state_dirs: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """Environment for the service processes: the session stack, a designed corpus and a state
    dir of the fleets' own whose stack.json names the session's backends, so the services
    register there (and never in a developer's stack)."""
    state_dir = _fleet_state_dirs.get(stack_info.kafka_bootstrap)
    if state_dir is None:
        state_dir = tmp_path_factory.mktemp("fleet") / ".agentlog"
        state_dir.mkdir()
        backends = {
            "database_url": stack_info.database_url,
            "kafka_bootstrap": stack_info.kafka_bootstrap,
        }
        (state_dir / "stack.json").write_text(json.dumps(backends))
        _fleet_state_dirs[stack_info.kafka_bootstrap] = state_dir
    return {
        "AGENTLOG_DATABASE_URL": stack_info.database_url,
        "AGENTLOG_KAFKA_BOOTSTRAP": stack_info.kafka_bootstrap,
        "AGENTLOG_AUTH_KEYS_DIR": str(stack_info.keys_dir),
        "AGENTLOG_DOCS_DIR": str(corpus),
        "AGENTLOG_MEMORY_LIMIT_CHARS": "3000",
        "AGENTLOG_MANIFEST_BUDGET_CHARS": "1500",
        "AGENTLOG_TASK_TIMEOUT_S": "20",
        "AGENTLOG_STATE_DIR": str(state_dir),
    }


@pytest.fixture(scope="session")
def fleet_pool() -> Iterator[FleetPool]:
    """The pool of the shared fleet; whatever still runs stops at the end of the session."""
    try:
        yield _pool
    finally:
        _pool.stop()


@pytest.fixture(scope="module")
def services(
    service_env: dict[str, str], fleet_pool: FleetPool, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcesses]:
    """The five services, each its own process, for the whole module: the running fleet of
    the modules before it when their environment is the same, else a fresh one."""
    fleet = fleet_pool.fleet(service_env, tmp_path_factory.mktemp("logs"))
    try:
        yield fleet
    finally:
        fleet_pool.stop_if_dead()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end tests on the shared fleet run first, Tansu's before Kafka's, otherwise in
    their usual order, so each stack's fleet starts once; the others follow in theirs."""
    slots = [i for i, item in enumerate(items) if item.path.is_relative_to(HERE)]
    ordered = sorted((items[i] for i in slots), key=_fleet_order)
    for i, item in zip(slots, ordered, strict=True):
        items[i] = item


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """No other fleet, nor any other test, runs next to the shared one: it stops as soon as
    the next test does not use it. Before the fixtures' teardown (tryfirst): after the last
    test that teardown stops the session's stacks, and the fleet must exit before them."""
    if nextitem is None or not _uses_shared_fleet(nextitem):
        _pool.stop()


def _uses_shared_fleet(item: pytest.Item) -> bool:
    return SHARED_FLEET in getattr(item, "fixturenames", ())


def _fleet_order(item: pytest.Item) -> tuple[bool, bool]:
    """Shared-fleet tests first, on Tansu first (a module naming both brokers runs twice)."""
    if not _uses_shared_fleet(item):
        return (True, False)
    callspec = getattr(item, "callspec", None)
    broker = callspec.params.get("broker", "tansu") if callspec is not None else "tansu"
    return (False, broker != "tansu")


@pytest.fixture
async def producer(stack_info: StackInfo) -> AsyncIterator[AIOKafkaProducer]:
    """A plain aiokafka producer: what any upstream system would use."""
    producer = AIOKafkaProducer(bootstrap_servers=stack_info.kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()
