"""The outbox relay outlives a failing store or bus: it retries instead of ending the supervisor."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator, Mapping
from datetime import UTC, datetime

import pytest

from schemas.base import Message
from schemas.events import WorkflowPolicy
from schemas.messages import GoalSubmitted
from schemas.topics import GOALS, WORKFLOW_EVENTS, task_topic
from services.supervisor.handler import Supervisor
from services.supervisor.relay import OutboxRelay
from shared.eventstore import InMemoryEventStore, NewEvent, RecordedEvent
from shared.transport import Delivery
from shared.transport.memory import InMemoryBus

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class _FixedClock:
    """Always the same instant."""

    def now(self) -> datetime:
        return NOW


class _FlakyStore(InMemoryEventStore):
    """A store whose global feed fails a few times, like a dropped database connection."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("connection was closed in the middle of operation")
        return await super().read_all(after_position, limit)


class _FlakyBus(InMemoryBus):
    """A bus whose first publish fails after nothing was written, like a broker timeout."""

    def __init__(self) -> None:
        super().__init__(service="supervisor", topics=[WORKFLOW_EVENTS, task_topic("search")])
        self.failed = False

    async def publish(
        self,
        topic: str,
        message: Message,
        *,
        key: str,
        ce_id: str | None = None,
        subject: str | None = None,
        headers: Mapping[str, bytes] | None = None,
    ) -> None:
        if not self.failed:
            self.failed = True
            raise TimeoutError("broker did not acknowledge")
        await super().publish(
            topic, message, key=key, ce_id=ce_id, subject=subject, headers=headers
        )


class _Ack:
    """An acknowledgement that remembers whether anyone waited for it."""

    def __init__(self) -> None:
        self.awaited = False

    def __await__(self) -> Generator[None, None, None]:
        self.awaited = True
        yield from asyncio.sleep(0).__await__()


class _FailsSecondQueueBus(InMemoryBus):
    """A bus that queues its first message and fails to queue the second."""

    def __init__(self) -> None:
        super().__init__(service="supervisor", topics=[WORKFLOW_EVENTS, task_topic("search")])
        self.acks: list[_Ack] = []

    async def publish_queued(
        self,
        topic: str,
        message: Message,
        *,
        key: str,
        ce_id: str | None = None,
        subject: str | None = None,
        headers: Mapping[str, bytes] | None = None,
    ) -> Awaitable[object]:
        if self.acks:
            raise TimeoutError("producer buffer full")
        self.acks.append(_Ack())
        return self.acks[-1]


async def _started_workflow(store: InMemoryEventStore) -> Supervisor:
    supervisor = Supervisor(store, _FixedClock(), WorkflowPolicy())
    goal = GoalSubmitted(workflow_id="wf-r", goal="explain replay")
    await supervisor.handle(
        Delivery(
            message=goal,
            topic=GOALS,
            partition=0,
            offset=0,
            key=None,
            ce_id="g",
            ce_type=goal.TYPE,
            ce_source="test",
            ce_time=None,
            ce_subject=None,
        )
    )
    return supervisor


async def _run_until_relayed(relay: OutboxRelay, store: InMemoryEventStore) -> None:
    """Run the relay until its checkpoint covers the whole log, then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    last = (await store.read("wf-r"))[-1].position
    async with asyncio.timeout(10):  # guards against a hang only
        while await store.load_checkpoint(OutboxRelay.CHECKPOINT) < last:
            assert not task.done(), "the relay ended instead of retrying"
            await asyncio.sleep(0.01)
    stop.set()
    await task


async def test_relay_retries_after_the_store_fails() -> None:
    """Failed reads of the global feed are retried; every event is still relayed once."""
    store = _FlakyStore(failures=2)
    supervisor = await _started_workflow(store)
    async with InMemoryBus(
        service="supervisor", topics=[WORKFLOW_EVENTS, task_topic("search")]
    ) as bus:
        relay = OutboxRelay(store, bus, supervisor.committed, retry_pause_s=0.01)
        await _run_until_relayed(relay, store)
        assert store.failures == 0
        assert len(bus.records(WORKFLOW_EVENTS)) == 2
        assert len(bus.records(task_topic("search"))) == 1


async def test_relay_retries_after_a_publish_fails() -> None:
    """A failed publish is retried from the same event, so nothing is skipped."""
    store = InMemoryEventStore()
    supervisor = await _started_workflow(store)
    async with _FlakyBus() as bus:
        relay = OutboxRelay(store, bus, supervisor.committed, retry_pause_s=0.01)
        await _run_until_relayed(relay, store)
        assert bus.failed
        audit = bus.records(WORKFLOW_EVENTS)
        assert [dict(r.headers)["ce_subject"] for r in audit] == [b"wf-r", b"wf-r"]
        assert len(bus.records(task_topic("search"))) == 1


async def test_a_batch_that_fails_midway_still_waits_for_what_it_queued() -> None:
    """A batch failing after some records were queued awaits their acks before it raises."""
    store = InMemoryEventStore()
    supervisor = await _started_workflow(store)
    async with _FailsSecondQueueBus() as bus:
        relay = OutboxRelay(store, bus, supervisor.committed)
        with pytest.raises(ExceptionGroup) as failed:
            await relay.relay_batch()
        assert failed.group_contains(TimeoutError)
        assert [ack.awaited for ack in bus.acks] == [True]
        assert relay.position == 0


async def test_a_task_the_relay_cannot_build_is_skipped_not_retried_forever() -> None:
    """A recorded task whose command does not validate is logged and skipped once: the relay
    moves on, publishes the audit copy and every later workflow's command."""
    store = InMemoryEventStore()
    bad = {
        "task_id": "search-v2",
        "agent": "search",
        "attempt": 1,
        "deadline": NOW.isoformat(),
        "command_type": "agentlog.task.search.v1",
        "command": {},
    }
    await store.append("wf-bad", [NewEvent("TaskScheduled", bad)], 0)
    supervisor = await _started_workflow(store)
    async with InMemoryBus(
        service="supervisor", topics=[WORKFLOW_EVENTS, task_topic("search")]
    ) as bus:
        relay = OutboxRelay(store, bus, supervisor.committed)
        assert await relay.relay_batch() == 3
        assert relay.unpublishable == 1
        assert relay.position == (await store.read_all())[-1].position
        [command] = bus.records(task_topic("search"))
        assert dict(command.headers)["ce_subject"] == b"wf-r"
        audited = [dict(r.headers)["ce_subject"] for r in bus.records(WORKFLOW_EVENTS)]
        assert sorted(audited) == [b"wf-bad", b"wf-r", b"wf-r"]
