"""Scale-out: three replicas of every worker and two supervisors share their consumer groups;
one replica of each kind is SIGKILLed mid-run and its partitions move to the survivors.

Each broker gets a stack of its own, with topics created at ``AGENTLOG_TOPIC_PARTITIONS=6``.
The supervisor killed is the one leading the outbox relay, so the lease moves too. Nothing may
be lost (every workflow completes and its completion is on ``agentlog.completions``) or applied
twice (every history is clean). The rebalance is timed from outside through the admin API
(tests/chaos/rebalance.py) and printed: run with ``-s`` to see it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from schemas.topics import APPROVALS, CONTROL, GOALS, RESULTS
from shared.domain import TERMINAL_EVENTS
from shared.eventstore import RecordedEvent
from shared.eventstore.postgres import PostgresEventStore
from shared.runtime.processes import replica_names, service_of
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
)
from tests.chaos.history import assert_clean_history
from tests.chaos.rebalance import GroupSnapshot, Takeover, round_robin, snapshot, watch_takeover
from tests.e2e.corpus import MANY_GOALS
from tests.kafka_available import needs_kafka

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = 6
WORKFLOWS = 12
REPLICAS = {"supervisor": 2, "search": 3, "writer": 3, "critic": 3, "summarizer": 3}
#: 17 processes and a broker on a shared 2-core machine: deadlines long enough that load alone
#: does not spend a task's attempts (a killed worker's task is re-read by the survivor anyway).
TASK_TIMEOUT_S = 10
#: Starting 17 Python processes at once on two cores takes a while.
START_S = 300.0
FINISH_S = 400.0
#: Each shared consumer group, by the service whose replicas form it, with its topics.
GROUPS: dict[str, dict[str, dict[str, int]]] = {
    "supervisor": {
        "agentlog.supervisor": {GOALS: PARTITIONS, RESULTS: PARTITIONS, CONTROL: PARTITIONS},
        "agentlog.supervisor.approvals": {APPROVALS: PARTITIONS},
    },
    **{
        agent: {f"agentlog.{agent}": {f"agentlog.tasks.{agent}": PARTITIONS}}
        for agent in ("search", "writer", "critic", "summarizer")
    },
}


@pytest.fixture(
    params=[
        pytest.param(BrokerKind.TANSU, id="tansu"),
        pytest.param(BrokerKind.KAFKA, id="kafka", marks=needs_kafka),
    ]
)
def scaled_stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[EmbeddedStack]:
    """A stack of this test's own whose topics are created with six partitions."""
    monkeypatch.setenv("AGENTLOG_TOPIC_PARTITIONS", str(PARTITIONS))  # read by stack.up()
    stack = EmbeddedStack(tmp_path_factory.mktemp("scale") / ".agentlog", broker=request.param)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture
async def scaled_fleet(
    scaled_stack: EmbeddedStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Fleet, PostgresEventStore, AIOKafkaProducer, str]]:
    """Every service in replicas on ``scaled_stack``, its event store and a producer."""
    env = {
        **own_stack_env(scaled_stack, tmp_path / "corpus", monkeypatch),
        "AGENTLOG_TOPIC_PARTITIONS": str(PARTITIONS),
        # Small memory so long workflows also give the summarizers work.
        "AGENTLOG_MEMORY_LIMIT_CHARS": "3000",
        "AGENTLOG_MANIFEST_BUDGET_CHARS": "1500",
        # Longer than the shared default: 17 processes on 2 cores answer slowly.
        "AGENTLOG_TASK_TIMEOUT_S": str(TASK_TIMEOUT_S),
    }
    bootstrap = env["AGENTLOG_KAFKA_BOOTSTRAP"]
    fleet = Fleet(env, tmp_path / "logs", REPO, replica_names(REPLICAS))
    fleet.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:

        async def all_ready() -> bool | None:
            return True if all(fleet.ready_count(n) >= 1 for n in fleet.names) else None

        await eventually(all_ready, what="every replica ready", fleet=fleet, timeout_s=START_S)
        await producer.start()
        async with PostgresEventStore(env["AGENTLOG_DATABASE_URL"]) as store:
            yield fleet, store, producer, bootstrap
    finally:
        await producer.stop()
        codes = fleet.stop()
    survivors = {name: code for name, code in codes.items() if name not in fleet.downed}
    assert all(code == 0 for code in survivors.values()), f"unclean exits: {survivors}"


async def _stable(
    admin: AIOKafkaAdminClient, group: str, topics: dict[str, int], members: int
) -> GroupSnapshot | None:
    """The group if it is stable with ``members`` members holding every partition, else None."""
    try:
        now = await snapshot(admin, group, topics)
    except Exception:  # the coordinator may not know the group yet
        return None
    full = now.state == "Stable" and len(now.members) == members
    return now if full and len(now.partitions) == sum(topics.values()) else None


async def _settled(admin: AIOKafkaAdminClient, fleet: Fleet) -> None:
    """Wait until every shared group has one member per replica and all partitions held."""
    for service, groups in GROUPS.items():
        for group, topics in groups.items():
            await eventually(
                functools.partial(_stable, admin, group, topics, REPLICAS[service]),
                what=f"{group} stable with {REPLICAS[service]} members",
                fleet=fleet,
                timeout_s=START_S,
            )


def _relay_leader(fleet: Fleet) -> str:
    """The supervisor replica holding the outbox relay's lease (it logged that it leads)."""
    leading = [
        name
        for name in fleet.names
        if service_of(name) == "supervisor" and fleet.log_count(name, "outbox relay leading")
    ]
    assert len(leading) == 1, f"one relay leader, not {leading}"
    return leading[0]


async def _lease_moved(fleet: Fleet, killed: str, killed_at: float) -> float:
    """Seconds from the kill until another supervisor logs that it leads the outbox relay."""
    others = [n for n in fleet.names if service_of(n) == "supervisor" and n != killed]

    async def leading() -> bool | None:
        return True if any(fleet.log_count(n, "outbox relay leading") for n in others) else None

    await eventually(leading, what="the relay lease to move", fleet=fleet, every_s=0.1)
    return time.monotonic() - killed_at


def _report(broker: str, victims: dict[str, str], takeovers: list[Takeover]) -> str:
    lines = [f"rebalance after SIGKILL on {broker} ({PARTITIONS} partitions per topic):"]
    for t in takeovers:
        moved = ",".join(
            f"{tp.topic.removeprefix('agentlog.')}/{tp.partition}" for tp in sorted(t.moved)
        )
        first = "-" if t.first_commit_s is None else f"{t.first_commit_s:.1f} s"
        reassigned = "never" if t.reassigned_s is None else f"{t.reassigned_s:.1f} s"
        lines.append(
            f"  {t.group:<30} killed {victims[t.group]:<13} reassigned {reassigned:>7}"
            f"  first commit on a moved partition {first:>7}"
            f"  ({len(t.committed_moved)}/{len(t.moved)} moved partitions committed: {moved})"
        )
    return "\n".join(lines)


async def test_replicas_survive_one_sigkill_of_each_kind(
    scaled_stack: EmbeddedStack,
    scaled_fleet: tuple[Fleet, PostgresEventStore, AIOKafkaProducer, str],
) -> None:
    """3 replicas per worker and 2 supervisors: killing one of each loses and repeats nothing."""
    fleet, store, producer, bootstrap = scaled_fleet
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    watches: list[asyncio.Task[Takeover]] = []
    try:
        described = await admin.describe_topics([GOALS, "agentlog.tasks.writer"])
        assert [len(t["partitions"]) for t in described] == [PARTITIONS, PARTITIONS]
        await _settled(admin, fleet)

        began = time.monotonic()
        # Half the goals before the kills, so every stage has work in flight; half right after,
        # so goals also land on the dead supervisor's partitions while they move.
        goals = [MANY_GOALS[i % len(MANY_GOALS)] for i in range(WORKFLOWS)]
        ids = [await publish_goal(producer, *goal) for goal in goals[: WORKFLOWS // 2]]
        await wait_for_event(
            store, ids[-1], is_task_for("search"), what="work in flight", fleet=fleet
        )
        await wait_for_event(store, ids[0], is_task_for("writer"), what="drafting", fleet=fleet)

        victims: dict[str, str] = {}
        for service, groups in GROUPS.items():
            victim = _relay_leader(fleet) if service == "supervisor" else f"{service}#2"
            victims.update({group: victim for group in groups})
        before = {
            group: await snapshot(admin, group, topics)
            for groups in GROUPS.values()
            for group, topics in groups.items()
        }
        for victim in dict.fromkeys(victims.values()):
            fleet.kill(victim)
        killed_at = time.monotonic()
        workflows_done = asyncio.Event()
        watches += [
            asyncio.create_task(
                watch_takeover(
                    admin, group, topics, before[group], killed_at, enough=workflows_done
                )
            )
            for groups in GROUPS.values()
            for group, topics in groups.items()
        ]
        ids += [await publish_goal(producer, *goal) for goal in goals[WORKFLOWS // 2 :]]
        lease_moved_s = await _lease_moved(fleet, victims["agentlog.supervisor"], killed_at)

        histories = [await _finished(store, wid, fleet) for wid in ids]
        finished_s = time.monotonic() - killed_at
        workflows_done.set()
        takeovers = await asyncio.gather(*watches)
        state = read_state(scaled_stack.state_dir / "stack.json")
        broker = state.broker_kind if state is not None else "?"
        print("\n" + _report(str(broker), victims, takeovers))
        print(
            f"  outbox relay lease taken over by the other supervisor after {lease_moved_s:.1f} s"
        )

        for takeover in takeovers:
            assert takeover.reassigned_s is not None, f"{takeover.group} never settled"
            assert takeover.moved, f"{takeover.group}: the dead member held no partition"
            snap = before[takeover.group]
            if not snap.inferred:  # the broker said: the round-robin inference must agree
                topics = GROUPS[service_of(victims[takeover.group])][takeover.group]
                assert snap.members == round_robin(list(snap.members), topics)

        outcomes = {wid: h[-1].type for wid, h in zip(ids, histories, strict=True)}
        assert all(t == "WorkflowCompleted" for t in outcomes.values()), outcomes
        for history in histories:
            assert_clean_history(history)

        async def all_published() -> set[str] | None:
            found = {r.key.decode() for r in await read_topic(bootstrap, COMPLETIONS, set(ids))}
            return found if found == set(ids) else None

        await eventually(all_published, what="every completion published", fleet=fleet)
        # The surviving supervisor took the relay's lease over from the one killed.
        assert (
            sum(
                fleet.log_count(name, "outbox relay leading")
                for name in fleet.names
                if service_of(name) == "supervisor" and name not in fleet.downed
            )
            == 1
        )
        assert fleet.crashed() == {}
        print(
            f"{WORKFLOWS} workflows completed {finished_s:.0f} s after the kills;"
            f" {time.monotonic() - began:.0f} s from the first goal's publish to the end"
        )
    finally:
        for watch in watches:
            watch.cancel()
        await asyncio.gather(*watches, return_exceptions=True)
        await admin.close()


async def _finished(
    store: PostgresEventStore, workflow_id: str, fleet: Fleet
) -> list[RecordedEvent]:
    """The workflow's history once it ended, waiting as long as a loaded machine needs."""

    async def ended() -> list[RecordedEvent] | None:
        events = await store.read(workflow_id)
        return events if any(e.type in TERMINAL_EVENTS for e in events) else None

    return await eventually(ended, what=f"{workflow_id} to finish", fleet=fleet, timeout_s=FINISH_S)
