"""The broker stops and starts again under running services; every workflow still completes.

Each test runs its own stack, so restarting its broker disturbs no other test. On Tansu the
restart forgets every topic, offset and group (memory storage); on Apache Kafka they survive
on disk. Either way the services are left running: they must notice, recover and re-drive, and
a downstream consumer reading ``agentlog.completions`` afterwards must find every completion.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest
from aiokafka import AIOKafkaProducer

from shared.domain import TERMINAL_EVENTS
from shared.eventstore.postgres import PostgresEventStore
from shared.stack import EmbeddedStack
from shared.stack.state import BrokerKind, read_state
from tests.chaos.harness import (
    COMPLETIONS,
    Fleet,
    eventually,
    is_task_for,
    own_stack_env,
    publish_goal,
    read_topic,
    wait_for_event,
    wait_terminal,
)
from tests.e2e.corpus import MANY_GOALS
from tests.kafka_available import needs_kafka

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = 10


@pytest.fixture(
    params=[
        pytest.param(BrokerKind.TANSU, id="tansu"),
        pytest.param(BrokerKind.KAFKA, id="kafka", marks=needs_kafka),
    ]
)
def own_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedStack]:
    """A stack of this test's own, with the broker the parameter names."""
    stack = EmbeddedStack(tmp_path_factory.mktemp("restart") / ".agentlog", broker=request.param)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture
async def own_fleet(
    own_stack: EmbeddedStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Fleet, PostgresEventStore, AIOKafkaProducer, str]]:
    """The five services on ``own_stack``, its event store and a producer."""
    env = own_stack_env(own_stack, tmp_path / "corpus", monkeypatch)
    bootstrap = env["AGENTLOG_KAFKA_BOOTSTRAP"]
    fleet = Fleet(env, tmp_path / "logs", REPO)
    fleet.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        await fleet.wait_ready()
        await producer.start()
        async with PostgresEventStore(env["AGENTLOG_DATABASE_URL"]) as store:
            yield fleet, store, producer, bootstrap
    finally:
        await producer.stop()
        codes = fleet.stop()
    assert all(code == 0 for code in codes.values()), f"unclean exits: {codes}"


def _restart_broker(stack: EmbeddedStack) -> float:
    """Kill the broker process and let ``stack up`` start it again; seconds it was away."""
    state = read_state(stack.state_dir / "stack.json")
    assert state is not None
    broker = psutil.Process(state.broker.pid)
    broker.kill()
    started = time.monotonic()
    broker.wait(10)
    info = stack.up()
    assert info.broker.pid != state.broker.pid
    assert info.broker.port == state.broker.port, "running services keep the old address"
    return time.monotonic() - started


async def test_broker_restart_mid_run_every_workflow_completes_and_is_published(
    own_stack: EmbeddedStack,
    own_fleet: tuple[Fleet, PostgresEventStore, AIOKafkaProducer, str],
) -> None:
    """Ten workflows in flight survive a broker restart; each completion reaches the topic."""
    fleet, store, producer, bootstrap = own_fleet
    ids = [await publish_goal(producer, *MANY_GOALS[i % len(MANY_GOALS)]) for i in range(WORKFLOWS)]
    await wait_for_event(store, ids[-1], is_task_for("search"), what="work in flight", fleet=fleet)
    away_s = _restart_broker(own_stack)
    print(f"broker away for {away_s:.1f} s")

    histories = [await wait_terminal(store, wid, fleet) for wid in ids]
    outcomes = {wid: h[-1].type for wid, h in zip(ids, histories, strict=True)}
    assert all(t == "WorkflowCompleted" for t in outcomes.values()), outcomes
    assert all(h[-1].type in TERMINAL_EVENTS for h in histories)

    async def all_published() -> set[str] | None:
        found = {r.key.decode() for r in await read_topic(bootstrap, COMPLETIONS, set(ids))}
        return found if found == set(ids) else None

    await eventually(all_published, what="every completion on agentlog.completions", fleet=fleet)
    assert not fleet.crashed()
    await asyncio.sleep(0)
