"""The supervisor's handler and outbox relay over the in-memory store and bus."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from schemas.events import WorkflowPolicy
from schemas.messages import GoalSubmitted, Passage, Provenance, SearchResult
from schemas.topics import COMPLETIONS, GOALS, RESULTS, WORKFLOW_EVENTS, task_topic
from services.supervisor.handler import FLEET_STREAM, Supervisor
from services.supervisor.relay import OutboxRelay
from shared.eventstore import InMemoryEventStore, RecordedEvent, StoreUnavailableError
from shared.transport import Delivery, TransientError

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FixedClock:
    """Always the same instant."""

    def now(self) -> datetime:
        return NOW


def _delivery(message: object, ce_id: str, topic: str = GOALS) -> Delivery:
    return Delivery(
        message=message,  # type: ignore[arg-type]  # any Message subclass
        topic=topic,
        partition=0,
        offset=0,
        key=None,
        ce_id=ce_id,
        ce_type="t",
        ce_source="test",
        ce_time=None,
        ce_subject=None,
    )


def _supervisor(store: InMemoryEventStore) -> Supervisor:
    return Supervisor(store, FixedClock(), WorkflowPolicy())


async def test_goal_is_recorded_once_under_redelivery() -> None:
    """A redelivered goal message (same ce_id) appends nothing the second time."""
    store = InMemoryEventStore()
    supervisor = _supervisor(store)
    goal = GoalSubmitted(workflow_id="wf-a", goal="explain replay")
    await supervisor.handle(_delivery(goal, "goal-1"))
    await supervisor.handle(_delivery(goal, "goal-1"))
    records = await store.read("wf-a")
    assert [r.type for r in records] == ["WorkflowStarted", "TaskScheduled"]
    assert records[0].metadata["causation_id"] == "goal-1"
    assert records[0].metadata["actor"] == "supervisor"
    assert "wf-a" in supervisor.active


async def test_duplicate_result_with_new_ce_id_is_ignored() -> None:
    """Two deliveries of the same task attempt's result record it once."""
    store = InMemoryEventStore()
    supervisor = _supervisor(store)
    await supervisor.handle(
        _delivery(GoalSubmitted(workflow_id="wf-b", goal="explain replay"), "g")
    )
    task_id = (await store.read("wf-b"))[-1].data["task_id"]
    result = SearchResult(
        workflow_id="wf-b",
        task_id=task_id,
        attempt=1,
        provenance=Provenance(provider="p", model="m", strategy_version="1"),
        passages=[Passage(source_id="doc#1", text="replay folds events")],
    )
    await supervisor.handle(_delivery(result, "r-1", RESULTS))
    await supervisor.handle(_delivery(result, "r-2", RESULTS))
    types = [r.type for r in await store.read("wf-b")]
    assert types == ["WorkflowStarted", "TaskScheduled", "PassagesRetrieved", "TaskScheduled"]


async def test_relay_publishes_commands_and_audit_feed_in_log_order() -> None:
    """The relay publishes each TaskScheduled as its command, every event to the audit feed."""
    from shared.transport.memory import InMemoryBus

    store = InMemoryEventStore()
    supervisor = _supervisor(store)
    await supervisor.handle(
        _delivery(GoalSubmitted(workflow_id="wf-c", goal="explain replay"), "g")
    )
    bus = InMemoryBus(service="supervisor", topics=[WORKFLOW_EVENTS, task_topic("search")])
    async with bus:
        relay = OutboxRelay(store, bus, supervisor.committed)
        assert await relay.relay_batch() == 2
        assert await relay.relay_batch() == 0
        audit = bus.records(WORKFLOW_EVENTS)
        commands = bus.records(task_topic("search"))
        assert bus.records(COMPLETIONS) == []
    assert [json.loads(r.value or b"")["type"] for r in audit] == [
        "WorkflowStarted",
        "TaskScheduled",
    ]
    assert len(commands) == 1
    headers = dict(commands[0].headers)
    assert headers["ce_type"] == b"agentlog.task.search.v1"
    assert headers["ce_id"].decode() == (await store.read("wf-c"))[1].event_id
    assert await store.load_checkpoint(OutboxRelay.CHECKPOINT) == relay.position


async def test_relay_resumes_from_its_checkpoint() -> None:
    """A new relay instance starts after the last relayed position, publishing nothing twice."""
    from shared.transport.memory import InMemoryBroker, InMemoryBus

    store = InMemoryEventStore()
    supervisor = _supervisor(store)
    broker = InMemoryBroker()
    await supervisor.handle(
        _delivery(GoalSubmitted(workflow_id="wf-d", goal="explain replay"), "g")
    )
    async with InMemoryBus(service="s", broker=broker, topics=[WORKFLOW_EVENTS]) as bus:
        await OutboxRelay(store, bus, supervisor.committed).relay_batch()
    await supervisor.handle(
        _delivery(GoalSubmitted(workflow_id="wf-e", goal="explain replay"), "h")
    )
    async with InMemoryBus(service="s", broker=broker, topics=[WORKFLOW_EVENTS]) as bus:
        relay = OutboxRelay(store, bus, supervisor.committed)
        relay.position = await store.load_checkpoint(OutboxRelay.CHECKPOINT)
        assert await relay.relay_batch() == 2
        subjects = [dict(r.headers)["ce_subject"] for r in bus.records(WORKFLOW_EVENTS)]
    assert subjects == [b"wf-d", b"wf-d", b"wf-e", b"wf-e"]


class FlakyStore(InMemoryEventStore):
    """Loses its database connection on the first read."""

    def __init__(self) -> None:
        super().__init__()
        self.outages = 1

    async def read(
        self, stream_id: str, *, after_version: int = 0, up_to_version: int | None = None
    ) -> list[RecordedEvent]:
        if self.outages:
            self.outages -= 1
            raise StoreUnavailableError("connection lost")
        return await super().read(
            stream_id, after_version=after_version, up_to_version=up_to_version
        )


async def test_store_outage_is_reported_as_transient_so_the_message_is_retried() -> None:
    """A lost database connection surfaces as TransientError (retry), never as a dead letter."""
    store = FlakyStore()
    supervisor = _supervisor(store)
    goal = GoalSubmitted(workflow_id="wf-f", goal="explain replay")
    with pytest.raises(TransientError):
        await supervisor.handle(_delivery(goal, "goal-f"))
    await supervisor.handle(_delivery(goal, "goal-f"))
    assert [r.type for r in await store.read("wf-f")] == ["WorkflowStarted", "TaskScheduled"]


class MovableClock:
    """A clock the test moves forward."""

    def __init__(self) -> None:
        self.current = NOW

    def now(self) -> datetime:
        return self.current


class CountingStore(InMemoryEventStore):
    """Counts stream reads, to see which workflows a tick visits."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    async def read(
        self, stream_id: str, *, after_version: int = 0, up_to_version: int | None = None
    ) -> list[RecordedEvent]:
        self.reads.append(stream_id)
        return await super().read(
            stream_id, after_version=after_version, up_to_version=up_to_version
        )


async def test_tick_visits_only_workflows_whose_deadline_passed() -> None:
    """Ticks read no workflow before its deadline (only the fleet stream's switches); after it,
    the overdue task times out and retries."""
    store = CountingStore()
    clock = MovableClock()
    supervisor = Supervisor(store, clock, WorkflowPolicy(task_timeout_s=10))
    await supervisor.handle(
        _delivery(GoalSubmitted(workflow_id="wf-t", goal="explain replay"), "g")
    )
    store.reads.clear()

    clock.current = NOW + timedelta(seconds=5)
    await supervisor.tick()
    assert store.reads == [FLEET_STREAM]

    clock.current = NOW + timedelta(seconds=11)
    await supervisor.tick()
    types = [r.type for r in await store.read("wf-t")]
    assert types[-2:] == ["TaskTimedOut", "TaskScheduled"]
    assert supervisor.active["wf-t"] == NOW + timedelta(seconds=21)


async def test_a_supervisor_takes_over_the_deadlines_of_a_dead_ones_workflows() -> None:
    """A workflow started by a supervisor that then died is found by a surviving supervisor's
    tick (within DISCOVER_EVERY_S), whose overdue task then times out and is retried."""
    from services.supervisor.handler import DISCOVER_EVERY_S

    store = InMemoryEventStore()
    clock = MovableClock()
    survivor = Supervisor(store, clock, WorkflowPolicy(task_timeout_s=10))
    await survivor.tick()  # started (and scanned the store) before the workflow existed
    dead = Supervisor(store, clock, WorkflowPolicy(task_timeout_s=10))
    await dead.handle(_delivery(GoalSubmitted(workflow_id="wf-o", goal="explain replay"), "g"))
    assert "wf-o" not in survivor.active

    clock.current = NOW + timedelta(seconds=DISCOVER_EVERY_S + 1)
    await survivor.tick()
    types = [r.type for r in await store.read("wf-o")]
    assert types == ["WorkflowStarted", "TaskScheduled", "TaskTimedOut", "TaskScheduled"]
    assert survivor.active["wf-o"] == clock.current + timedelta(seconds=10)


class OneTermLease:
    """Leads once, loses the lease at the first check, and is never elected again."""

    def __init__(self) -> None:
        self.terms = 0

    async def acquire(self, stop: asyncio.Event) -> bool:
        self.terms += 1
        return self.terms == 1

    async def held(self) -> bool:
        return False


async def test_relay_stops_publishing_when_its_lease_is_lost() -> None:
    """A relay whose lease is gone stops relaying and waits to be elected again."""
    from shared.transport.memory import InMemoryBus

    store = InMemoryEventStore()
    supervisor = _supervisor(store)
    await supervisor.handle(
        _delivery(GoalSubmitted(workflow_id="wf-l", goal="explain replay"), "g")
    )
    lease = OneTermLease()
    async with InMemoryBus(service="s", topics=[WORKFLOW_EVENTS]) as bus:
        relay = OutboxRelay(store, bus, supervisor.committed, lease=lease, lease_check_s=-1.0)
        await asyncio.wait_for(relay.run(asyncio.Event()), 5)
        assert bus.records(WORKFLOW_EVENTS) == []
    assert lease.terms == 2


async def test_a_pause_recorded_by_one_supervisor_is_honoured_and_lifted_by_another() -> None:
    """Supervisors share the fleet stream: one records pause; another holds its own
    workflow's next step on its next tick, and schedules it once a resume is recorded."""
    from schemas.messages import PauseScheduling, SearchResult

    store = InMemoryEventStore()
    recorder = Supervisor(store, FixedClock(), WorkflowPolicy())
    worker = Supervisor(store, FixedClock(), WorkflowPolicy())
    await worker.handle(_delivery(GoalSubmitted(workflow_id="wf-p", goal="explain replay"), "g"))
    await recorder.handle(_delivery(PauseScheduling(paused=True, reason="outage"), "pause"))
    await worker.tick()
    assert worker.paused
    task_id = (await store.read("wf-p"))[-1].data["task_id"]
    result = SearchResult(
        workflow_id="wf-p",
        task_id=task_id,
        attempt=1,
        provenance=Provenance(provider="p", model="m", strategy_version="1"),
        passages=[Passage(source_id="doc#1", text="replay folds events")],
    )
    await worker.handle(_delivery(result, "r", RESULTS))
    assert [r.type for r in await store.read("wf-p")][-1] == "PassagesRetrieved"
    await recorder.handle(_delivery(PauseScheduling(paused=False), "resume"))
    await worker.tick()
    assert not worker.paused
    records = await store.read("wf-p")
    assert records[-1].type == "TaskScheduled"
    assert records[-1].data["agent"] == "writer"


class _CountingStore(InMemoryEventStore):
    """Counts stream reads, to show which decisions read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def read(
        self, stream_id: str, *, after_version: int = 0, up_to_version: int | None = None
    ) -> list[RecordedEvent]:
        self.reads += 1
        return await super().read(
            stream_id, after_version=after_version, up_to_version=up_to_version
        )


def _search_result(workflow_id: str, task_id: str) -> SearchResult:
    return SearchResult(
        workflow_id=workflow_id,
        task_id=task_id,
        attempt=1,
        provenance=Provenance(provider="p", model="m", strategy_version="1"),
        passages=[Passage(source_id="doc#1", text="replay folds events")],
    )


async def test_a_result_is_decided_on_the_cached_state_without_a_read() -> None:
    """A supervisor that wrote a workflow's last events decides its next result without
    reading the stream again."""
    store = _CountingStore()
    supervisor = _supervisor(store)
    await supervisor.handle(_delivery(GoalSubmitted(workflow_id="wf-c", goal="explain"), "g"))
    task_id = (await store.read("wf-c"))[-1].data["task_id"]
    reads = store.reads
    await supervisor.handle(_delivery(_search_result("wf-c", task_id), "r", RESULTS))
    assert store.reads == reads
    assert [r.type for r in await store.read("wf-c")][-2:] == ["PassagesRetrieved", "TaskScheduled"]


async def test_a_stale_cached_state_catches_up_instead_of_refusing_or_overwriting() -> None:
    """When another supervisor moved a workflow on, a result for the task it scheduled is
    still admitted and recorded after the newer events (the cached state caught up)."""
    store = InMemoryEventStore()
    first = Supervisor(store, FixedClock(), WorkflowPolicy())
    second = Supervisor(store, FixedClock(), WorkflowPolicy())
    await first.handle(_delivery(GoalSubmitted(workflow_id="wf-s", goal="explain replay"), "g"))
    search_task = (await store.read("wf-s"))[-1].data["task_id"]
    # The second supervisor takes the workflow over and schedules the writer.
    await second.handle(_delivery(_search_result("wf-s", search_task), "r1", RESULTS))
    write_task = (await store.read("wf-s"))[-1].data["task_id"]
    # The first one, whose cache stops at the search task, gets the writer's failure.
    from schemas.messages import TaskFailure

    failure = TaskFailure(
        workflow_id="wf-s",
        task_id=write_task,
        attempt=1,
        agent="writer",
        provenance=Provenance(provider="p", model="m", strategy_version="1"),
        error="model down",
        retryable=True,
    )
    await first.handle(_delivery(failure, "f1", RESULTS))
    records = await store.read("wf-s")
    assert [r.version for r in records] == list(range(1, len(records) + 1))
    failed = [r for r in records if r.type == "TaskFailed"]
    assert [r.data["task_id"] for r in failed] == [write_task]
