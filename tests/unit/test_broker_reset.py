"""After the broker forgot: open tasks re-published from the store, the relay rewound, logs calm."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from schemas.events import WorkflowPolicy
from schemas.messages import GoalSubmitted
from schemas.topics import WORKFLOW_EVENTS, task_topic
from services.supervisor.handler import Supervisor
from services.supervisor.redrive import PublishedPositions, open_task_commands
from services.supervisor.relay import OutboxRelay
from shared.eventstore import InMemoryEventStore
from shared.runtime.log_limits import RepeatFilter
from shared.transport.memory import InMemoryBus
from tests.unit.test_supervisor import FixedClock, _delivery


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the relay never got there")


async def _two_workflows(store: InMemoryEventStore) -> Supervisor:
    supervisor = Supervisor(store, FixedClock(), WorkflowPolicy())
    for workflow_id in ("wf-r1", "wf-r2"):
        goal = GoalSubmitted(workflow_id=workflow_id, goal="explain replay")
        await supervisor.handle(_delivery(goal, f"goal-{workflow_id}"))
    return supervisor


async def test_open_task_commands_are_the_latest_scheduled_events_of_open_tasks() -> None:
    """Each unfinished workflow's open task is found as its TaskScheduled event, in order."""
    store = InMemoryEventStore()
    supervisor = await _two_workflows(store)
    found = await open_task_commands(store, sorted(supervisor.active))
    assert [(r.stream_id, r.type) for r in found] == [
        ("wf-r1", "TaskScheduled"),
        ("wf-r2", "TaskScheduled"),
    ]
    assert await open_task_commands(store, ["wf-unknown"]) == []


async def test_redrive_republishes_open_tasks_under_their_ids_and_rewinds() -> None:
    """A re-drive publishes every open task's command again with its original ce_id and goes
    back to publish the recent past again."""
    store = InMemoryEventStore()
    supervisor = await _two_workflows(store)
    bus = InMemoryBus(service="supervisor", topics=[WORKFLOW_EVENTS, task_topic("search")])
    async with bus:
        relay = OutboxRelay(
            store, bus, supervisor.committed, active=lambda: list(supervisor.active)
        )
        stop = asyncio.Event()
        running = asyncio.create_task(relay.run(stop))
        await _until(lambda: relay.position >= 4)
        first = [dict(r.headers)["ce_id"] for r in bus.records(task_topic("search"))]
        relay.request_redrive(intact_since=0.0)
        await _until(lambda: relay.redrives == 1 and relay.position >= 4)
        stop.set()
        await running
        commands = [dict(r.headers)["ce_id"] for r in bus.records(task_topic("search"))]
    assert len(first) == 2
    # Re-driven (2) and published again after the rewind to where leading began (2).
    assert len(commands) == 6
    assert set(commands) == set(first)


def test_published_positions_go_back_to_the_last_mark_before_a_moment() -> None:
    """The rewind target is the last position acknowledged by then, else the oldest known."""
    marks = PublishedPositions()
    assert marks.before(5.0, default=42) == 42
    marks.mark(1.0, 10)
    marks.mark(2.0, 20)
    marks.mark(3.0, 30)
    assert marks.before(2.5, default=0) == 20
    assert marks.before(0.5, default=0) == 10
    assert marks.before(9.0, default=0) == 30


def _record(name: str, msg: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_repeat_filter_passes_one_line_per_window_then_counts_the_rest() -> None:
    """A storm of one warning becomes its first line, then one line saying how many were held."""
    now = [0.0]
    limit = RepeatFilter(window_s=30.0, clock=lambda: now[0])
    storm = "OffsetCommit failed for group %s"
    assert limit.filter(_record("aiokafka.consumer.group_coordinator", storm))
    assert not any(
        limit.filter(_record("aiokafka.consumer.group_coordinator", storm)) for _ in range(500)
    )
    now[0] = 31.0
    late = _record("aiokafka.consumer.group_coordinator", storm)
    assert limit.filter(late)
    assert "500 more like this" in str(late.msg)


def test_repeat_filter_leaves_other_loggers_and_info_alone() -> None:
    """Only warnings of the noisy loggers are limited; the service's own lines all pass."""
    limit = RepeatFilter(window_s=30.0, clock=lambda: 0.0)
    assert all(limit.filter(_record("services.supervisor.handler", "x")) for _ in range(3))
    assert all(limit.filter(_record("aiokafka", "joined", logging.INFO)) for _ in range(3))
