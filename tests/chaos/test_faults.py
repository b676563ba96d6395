"""Faults short of a crash: a command delivered twice, database connections dropped mid-run."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord

from schemas.registry import model_for
from schemas.topics import task_topic
from shared.domain.blobs import collect, expand
from shared.eventstore.postgres import PostgresEventStore
from shared.runtime.worker import result_id
from shared.transport.kafka import KafkaBus
from tests.chaos.harness import (
    RESULTS,
    SERVICE_DB_APP,
    Fleet,
    ce_id_of,
    eventually,
    is_task_for,
    publish_goal,
    read_topic,
    signer,
    wait_consumed,
    wait_for_event,
    wait_terminal,
)
from tests.chaos.history import assert_clean_history, result_events
from tests.conftest import StackInfo
from tests.e2e.corpus import MANY_GOALS, REVISE_GOAL

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]
BROKERS = ("tansu", "kafka")

# Drop every service connection each DROP_EVERY_S, DROP_ROUNDS times, while workflows run.
DROP_ROUNDS, DROP_EVERY_S = 200, 0.02


async def test_a_command_delivered_twice_is_done_twice_and_recorded_once(
    fleet: Fleet, store: PostgresEventStore, producer: AIOKafkaProducer, stack_info: StackInfo
) -> None:
    """A re-published writer command makes the writer answer twice; one DraftWritten is kept."""
    bootstrap = stack_info.kafka_bootstrap
    twin = signer(stack_info.keys_dir, "supervisor")  # workers take only signed tasks
    async with KafkaBus(bootstrap, service="supervisor", signer=twin) as relay_twin:
        workflow_id = await publish_goal(producer, *REVISE_GOAL)
        scheduled = await wait_for_event(
            store, workflow_id, is_task_for("writer"), what="a writer task", fleet=fleet
        )
        # Exactly what the relay re-publishes after a crash between publish and checkpoint:
        # the command with the values it holds by reference expanded from the stream.
        values: dict[str, Any] = {}
        for earlier in await store.read(workflow_id, up_to_version=scheduled.version):
            collect(earlier.data, values)
        command = model_for(scheduled.data["command_type"]).model_validate(
            expand(scheduled.data["command"], values), strict=False
        )
        await relay_twin.publish(
            task_topic("writer"), command, key=workflow_id, ce_id=scheduled.event_id
        )
    task_id = scheduled.data["task_id"]
    answer_id = result_id(workflow_id, task_id, 1)

    async def both_answers() -> list[ConsumerRecord] | None:
        records = await read_topic(bootstrap, RESULTS, {workflow_id})
        answers = [r for r in records if ce_id_of(r) == answer_id]
        return answers if len(answers) >= 2 else None

    answers = await eventually(both_answers, what="the writer's second answer", fleet=fleet)
    await wait_consumed(bootstrap, "agentlog.supervisor", answers, fleet)
    events = await wait_terminal(store, workflow_id, fleet)
    assert_clean_history(events)
    drafts = [e for e in result_events(events, "DraftWritten") if e.data["task_id"] == task_id]
    assert len(drafts) == 1
    assert fleet.processes.dead() == {}


async def test_dropped_database_connections_do_not_stop_any_workflow(
    fleet: Fleet, store: PostgresEventStore, producer: AIOKafkaProducer, stack_info: StackInfo
) -> None:
    """Postgres drops every service connection again and again; services stay up, all complete."""
    # Park every workflow at its first critique, so the rest of their work runs under the fault.
    fleet.terminate("critic")
    workflow_ids = [await publish_goal(producer, goal, c) for goal, c in MANY_GOALS]
    for workflow_id in workflow_ids:
        await wait_for_event(
            store, workflow_id, is_task_for("critic"), what="a critic task", fleet=fleet
        )
    fleet.restart("critic")
    conn = await asyncpg.connect(stack_info.database_url)
    dropped = 0
    try:
        for _ in range(DROP_ROUNDS):
            dropped += await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
                " FROM pg_stat_activity WHERE application_name = $1",
                SERVICE_DB_APP,
            )
            await asyncio.sleep(DROP_EVERY_S)
    finally:
        await conn.close()
    assert dropped > 0, "the fault hit the services' connections"

    for workflow_id in workflow_ids:
        assert_clean_history(await wait_terminal(store, workflow_id, fleet))
    assert fleet.processes.dead() == {}, "no service died of a dropped connection"


async def test_goals_published_during_database_outage_are_not_lost(
    fleet: Fleet, store: PostgresEventStore, producer: AIOKafkaProducer, stack_info: StackInfo
) -> None:
    """Goals arriving while Postgres keeps dropping connections are retried, not dead-lettered."""
    conn = await asyncpg.connect(stack_info.database_url)
    dropped = 0

    async def drop_connections() -> None:
        nonlocal dropped
        for _ in range(DROP_ROUNDS):
            dropped += await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
                " FROM pg_stat_activity WHERE application_name = $1",
                SERVICE_DB_APP,
            )
            await asyncio.sleep(DROP_EVERY_S)

    try:
        fault = asyncio.create_task(drop_connections())
        workflow_ids = []
        for goal, constraints in MANY_GOALS:
            workflow_ids.append(await publish_goal(producer, goal, constraints))
            await asyncio.sleep(DROP_EVERY_S * 3)  # spread the goals across the outage
        await fault
    finally:
        await conn.close()
    assert dropped > 0, "the fault hit the services' connections"
    for workflow_id in workflow_ids:
        assert_clean_history(await wait_terminal(store, workflow_id, fleet))
    assert fleet.processes.dead() == {}, "no service died of a dropped connection"
