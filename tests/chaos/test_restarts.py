"""Processes die mid-workflow; every workflow still finishes once, with each step recorded once.

The services run as real processes against the session's Postgres and broker. Faults are
SIGKILL (no drain, no commit, no LeaveGroup) or a clean stop that outlasts a task's deadline.
Outcomes are read from the event store and from the topics with plain aiokafka consumers.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from schemas.messages import CritiqueResult, Provenance
from schemas.topics import task_topic
from services.supervisor.handler import CONSUMER
from shared.eventstore import Tracking
from shared.eventstore.postgres import PostgresEventStore
from shared.runtime.worker import result_id
from shared.transport.kafka import KafkaBus
from tests.chaos.harness import (
    COMPLETIONS,
    RELAY_CHECKPOINT,
    RESULTS,
    WORKFLOW_EVENTS,
    Fleet,
    ce_id_of,
    eventually,
    is_task_for,
    publish_goal,
    read_topic,
    signer,
    wait_consumed,
    wait_for_event,
    wait_relayed,
    wait_terminal,
)
from tests.chaos.history import assert_clean_history, attempts_of, result_events
from tests.conftest import StackInfo
from tests.e2e.corpus import MANY_GOALS, REVISE_GOAL

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]
BROKERS = ("tansu", "kafka")

# How long a killed service stays down. Shorter than the 2 s session timeout, so the dead member
# still holds its partitions when the new one joins: the rebalance has to wait it out.
DOWNTIME_S = 1.0


async def test_writer_killed_mid_run_still_completes_with_each_step_once(
    fleet: Fleet, store: PostgresEventStore, producer: AIOKafkaProducer
) -> None:
    """A writer SIGKILLed as its task is published, then restarted: one clean, complete history."""
    workflow_id = await publish_goal(producer, *REVISE_GOAL)
    await wait_for_event(
        store, workflow_id, is_task_for("writer"), what="a writer task", fleet=fleet
    )
    fleet.kill("writer")
    await asyncio.sleep(DOWNTIME_S)
    fleet.restart("writer")

    events = await wait_terminal(store, workflow_id, fleet)
    assert_clean_history(events)
    # The first draft was sent back, so the writer was needed again around the fault.
    assert len(result_events(events, "DraftWritten")) >= 2
    # The restarted writer may finish its task before it logs "ready" (it subscribes to its
    # kill-switch feed after its task feed), so wait for the line rather than expect it.
    await fleet.wait_ready(("writer",), starts=2)
    assert fleet.ready_count("writer") == 2
    assert fleet.processes.dead() == {}


async def test_critic_down_past_deadline_is_retried_and_a_late_answer_ignored(
    fleet: Fleet, store: PostgresEventStore, producer: AIOKafkaProducer, stack_info: StackInfo
) -> None:
    """With the critic down its task times out and is retried; a late attempt-1 reply is void."""
    fleet.terminate("critic")
    workflow_id = await publish_goal(producer, *REVISE_GOAL)
    timed_out = await wait_for_event(
        store,
        workflow_id,
        lambda e: e.type == "TaskTimedOut" and e.data["agent"] == "critic",
        what="the critic task's time-out",
        fleet=fleet,
    )
    task_id = timed_out.data["task_id"]
    assert timed_out.data["attempt"] == 1
    await wait_for_event(
        store,
        workflow_id,
        lambda e: e.type == "TaskScheduled" and e.data["task_id"] == task_id,
        what="attempt 1 scheduled",
    )
    retry = await wait_for_event(
        store,
        workflow_id,
        lambda e: is_task_for("critic", 2)(e) and e.data["task_id"] == task_id,
        what="attempt 2 scheduled",
        fleet=fleet,
    )
    assert retry.position > timed_out.position

    # Attempt 1's answer arrives after its deadline, approving the draft the real critic rejects.
    late = CritiqueResult(
        workflow_id=workflow_id,
        task_id=task_id,
        attempt=1,
        provenance=Provenance(provider="chaos", model="late", strategy_version="late"),
        verdict="approved",
        score=1.0,
        revision=0,
    )
    critic = signer(stack_info.keys_dir, "critic")  # a result counts only from its agent
    async with KafkaBus(stack_info.kafka_bootstrap, service="critic", signer=critic) as bus:
        await bus.publish(RESULTS, late, key=workflow_id, ce_id=result_id(workflow_id, task_id, 1))
    tracking = Tracking(CONSUMER, f"result/{workflow_id}/{task_id}/1")

    async def handled() -> bool | None:
        return True if await store.is_processed(tracking) else None

    await eventually(handled, what="the late result to be handled", fleet=fleet)
    assert not result_events(await store.read(workflow_id), "CritiqueIssued")

    fleet.restart("critic")
    events = await wait_terminal(store, workflow_id, fleet)
    assert_clean_history(events)
    assert attempts_of(events, task_id)[:2] == [1, 2]
    verdicts = {
        e.data["task_id"]: e.data["verdict"] for e in result_events(events, "CritiqueIssued")
    }
    assert verdicts[task_id] == "revise", "the real critic's verdict, not the late approval"
    assert fleet.processes.dead() == {}


async def test_supervisor_killed_mid_run_resumes_and_completes_once(
    fleet: Fleet, store: PostgresEventStore, producer: AIOKafkaProducer, stack_info: StackInfo
) -> None:
    """A SIGKILLed supervisor restarts, relays from its checkpoint and completes the run once."""
    workflow_id = await publish_goal(producer, *REVISE_GOAL)
    await wait_for_event(
        store, workflow_id, is_task_for("writer"), what="a writer task", fleet=fleet
    )
    fleet.kill("supervisor")
    checkpoint_at_crash = await store.load_checkpoint(RELAY_CHECKPOINT)
    await asyncio.sleep(DOWNTIME_S)
    fleet.restart("supervisor")

    events = await wait_terminal(store, workflow_id, fleet)
    assert_clean_history(events)
    terminal = events[-1]
    await wait_relayed(store, terminal.position, fleet)
    completions = await read_topic(stack_info.kafka_bootstrap, COMPLETIONS, {workflow_id})
    assert completions, "the completion event was published"
    assert {ce_id_of(r) for r in completions} == {terminal.event_id}

    audit = Counter(
        ce_id_of(r)
        for r in await read_topic(stack_info.kafka_bootstrap, WORKFLOW_EVENTS, {workflow_id})
    )
    assert set(audit) == {f"{e.event_id}:audit" for e in events}, "every event, nothing else"
    relayed_before_crash = [e for e in events if e.position <= checkpoint_at_crash]
    assert all(audit[f"{e.event_id}:audit"] == 1 for e in relayed_before_crash), (
        "the restarted relay resumed after its checkpoint, not from the start"
    )
    await fleet.wait_ready(("supervisor",), starts=2)
    assert fleet.ready_count("supervisor") == 2
    assert fleet.processes.dead() == {}


async def test_relay_replay_after_a_crash_duplicates_only_with_the_same_ids(
    fleet: Fleet, store: PostgresEventStore, producer: AIOKafkaProducer, stack_info: StackInfo
) -> None:
    """A relay that re-publishes a whole workflow changes no history and repeats only ce_ids."""
    workflow_id = await publish_goal(producer, *REVISE_GOAL)
    events = await wait_terminal(store, workflow_id, fleet)
    terminal = events[-1]
    await wait_relayed(store, terminal.position, fleet)
    # The worst crash: the supervisor dies having published everything but checkpointed nothing.
    fleet.kill("supervisor")
    conn = await asyncpg.connect(stack_info.database_url)
    try:
        await conn.execute(
            f'UPDATE "{store.schema}".checkpoints SET position = $1 WHERE name = $2',
            events[0].position - 1,
            RELAY_CHECKPOINT,
        )
    finally:
        await conn.close()
    fleet.restart("supervisor")
    await wait_relayed(store, terminal.position, fleet)

    # Let every duplicate command and every answer to one run its course before judging.
    bootstrap = stack_info.kafka_bootstrap
    agents = ("search", "writer", "critic", "summarizer")
    commands = await asyncio.gather(
        *(read_topic(bootstrap, task_topic(agent), {workflow_id}) for agent in agents)
    )
    for agent, tasks in zip(agents, commands, strict=True):
        await wait_consumed(bootstrap, f"agentlog.{agent}", tasks, fleet)
    results = await read_topic(bootstrap, RESULTS, {workflow_id})
    await wait_consumed(bootstrap, "agentlog.supervisor", results, fleet)

    after = await store.read(workflow_id)
    assert [e.event_id for e in after] == [e.event_id for e in events], "history unchanged"
    completions = await read_topic(bootstrap, COMPLETIONS, {workflow_id})
    assert len(completions) >= 2, "the replay published the completion again"
    assert {ce_id_of(r) for r in completions} == {terminal.event_id}
    assert fleet.processes.dead() == {}


async def test_many_workflows_in_flight_survive_a_worker_restart(
    fleet: Fleet, store: PostgresEventStore, producer: AIOKafkaProducer, stack_info: StackInfo
) -> None:
    """Five workflows in flight while the writer is SIGKILLed and restarted: all complete once."""
    workflow_ids = [await publish_goal(producer, goal, c) for goal, c in MANY_GOALS]
    await wait_for_event(
        store, workflow_ids[0], is_task_for("writer"), what="a writer task", fleet=fleet
    )
    fleet.kill("writer")
    await asyncio.sleep(DOWNTIME_S)
    fleet.restart("writer")

    terminals: dict[str, str] = {}
    for workflow_id in workflow_ids:
        events = await wait_terminal(store, workflow_id, fleet)
        assert_clean_history(events)
        terminals[workflow_id] = events[-1].event_id
        await wait_relayed(store, events[-1].position, fleet)
    records = await read_topic(stack_info.kafka_bootstrap, COMPLETIONS, set(workflow_ids))
    ce_ids: dict[str, set[str]] = defaultdict(set)
    for record in records:
        ce_ids[record.key.decode()].add(ce_id_of(record))
    assert ce_ids == {wf: {terminals[wf]} for wf in workflow_ids}
    assert fleet.processes.dead() == {}
