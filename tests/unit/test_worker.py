"""The worker runtime: answers every live task, skips expired ones, never loses a result."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from schemas.events import RecordedEventMessage
from schemas.messages import (
    Provenance,
    SearchResult,
    SearchTask,
    TaskCommand,
    TaskResult,
    WriteTask,
)
from schemas.topics import RESULTS, WORKFLOW_EVENTS, task_topic
from shared.agents.writer import write_draft
from shared.llm import ModelError
from shared.llm.prompts import UnknownPromptError
from shared.runtime.clock import SystemClock
from shared.runtime.worker import Perform, TaskWorker, result_id
from shared.runtime.worker_main import model_agent
from shared.settings import Settings
from shared.transport import Delivery, TransientError
from shared.transport.memory import InMemoryBus
from tests.unit._agent_samples import write_task

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FixedClock:
    """Always the same instant."""

    def now(self) -> datetime:
        return NOW


def _task(deadline: datetime, attempt: int = 1) -> SearchTask:
    return SearchTask(
        workflow_id="wf-w", task_id="search-1", attempt=attempt, deadline=deadline, query="replay"
    )


def _delivery(task: TaskCommand) -> Delivery:
    return Delivery(
        message=task,
        topic=task_topic("search"),
        partition=0,
        offset=0,
        key=task.workflow_id,
        ce_id="cmd",
        ce_type=task.TYPE,
        ce_source="test",
        ce_time=None,
        ce_subject=task.workflow_id,
    )


async def _answer(task: TaskCommand) -> TaskResult:
    return SearchResult(
        workflow_id=task.workflow_id,
        task_id=task.task_id,
        attempt=task.attempt,
        provenance=Provenance(provider="p", model="m", strategy_version="1"),
    )


async def _explode(task: TaskCommand) -> TaskResult:
    raise RuntimeError("index is corrupt")


async def test_result_is_published_with_a_deterministic_id() -> None:
    """A live task's result is published keyed by workflow, its id derived from the attempt."""
    async with InMemoryBus(service="search", topics=[RESULTS]) as bus:
        worker = TaskWorker("search", SearchTask, _answer, bus, FixedClock())
        await worker.handle(_delivery(_task(NOW + timedelta(seconds=5))))
        await worker.handle(_delivery(_task(NOW + timedelta(seconds=5))))
        records = bus.records(RESULTS)
    ids = {dict(r.headers)["ce_id"] for r in records}
    assert ids == {result_id("wf-w", "search-1", 1).encode()}
    assert [r.key for r in records] == [b"wf-w", b"wf-w"]


async def test_expired_task_is_skipped() -> None:
    """A task past its deadline is not worked on: the supervisor has already moved on."""
    async with InMemoryBus(service="search", topics=[RESULTS]) as bus:
        worker = TaskWorker("search", SearchTask, _answer, bus, FixedClock())
        await worker.handle(_delivery(_task(NOW - timedelta(seconds=1))))
        assert bus.records(RESULTS) == []


async def test_agent_error_becomes_a_retryable_task_failure() -> None:
    """An exception inside the agent is answered as a TaskFailure naming the error."""
    async with InMemoryBus(service="search", topics=[RESULTS]) as bus:
        worker = TaskWorker("search", SearchTask, _explode, bus, FixedClock())
        await worker.handle(_delivery(_task(NOW + timedelta(seconds=5))))
        [record] = bus.records(RESULTS)
    assert dict(record.headers)["ce_type"] == b"agentlog.result.failure.v1"
    failure = json.loads(record.value or b"")
    assert failure["retryable"] is True
    assert "RuntimeError: index is corrupt" in failure["error"]


async def test_a_dependency_outage_spends_no_attempt() -> None:
    """An agent whose dependency is down (TransientError) publishes no failure: the record is
    retried by the transport, and the task's attempts are not spent on the outage."""

    async def index_down(task: TaskCommand) -> TaskResult:
        raise TransientError("search index unavailable: ConnectionResetError")

    async with InMemoryBus(service="search", topics=[RESULTS]) as bus:
        worker = TaskWorker("search", SearchTask, index_down, bus, FixedClock())
        with pytest.raises(TransientError):
            await worker.handle(_delivery(_task(NOW + timedelta(seconds=5))))
        assert bus.records(RESULTS) == []


async def test_unpublishable_result_is_a_transient_error() -> None:
    """When the result cannot be sent the task is retried (TransientError), not acknowledged."""
    bus = InMemoryBus(service="search", topics=[RESULTS])  # never started: publish fails
    worker = TaskWorker("search", SearchTask, _answer, bus, FixedClock())
    with pytest.raises(TransientError):
        await worker.handle(_delivery(_task(NOW + timedelta(seconds=5))))


async def test_a_model_error_reports_what_the_failed_call_used() -> None:
    """A failed attempt's TaskFailure carries the tokens and cost the model error recorded."""

    async def billed_failure(task: TaskCommand) -> TaskResult:
        error = ModelError("empty completion", retryable=False, prompt_tokens=120)
        error.provenance = Provenance(
            provider="openai",
            model="m",
            strategy_version="failure",
            prompt_tokens=120,
            cost_usd=0.25,
        )
        raise error

    async with InMemoryBus(service="search", topics=[RESULTS]) as bus:
        worker = TaskWorker("search", SearchTask, billed_failure, bus, FixedClock())
        await worker.handle(_delivery(_task(NOW + timedelta(seconds=5))))
        [record] = bus.records(RESULTS)
    failure = json.loads(record.value or b"")
    assert failure["retryable"] is False
    assert failure["provenance"]["prompt_tokens"] == 120
    assert failure["provenance"]["cost_usd"] == 0.25


async def test_an_unknown_prompt_version_is_not_retried() -> None:
    """An error that says it is not retryable (a prompt version no file holds) is final."""

    async def unknown_prompt(task: TaskCommand) -> TaskResult:
        raise UnknownPromptError("no prompt version '9.0.0' for agent 'writer'")

    async with InMemoryBus(service="search", topics=[RESULTS]) as bus:
        worker = TaskWorker("search", SearchTask, unknown_prompt, bus, FixedClock())
        await worker.handle(_delivery(_task(NOW + timedelta(seconds=5))))
        [record] = bus.records(RESULTS)
    assert json.loads(record.value or b"")["retryable"] is False


# --- the kill-switch reaches running work -------------------------------------------------


class _SlowAgent:
    """A perform that hangs for workflow ``wf-slow`` and answers at once for any other."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def perform(self, task: TaskCommand) -> TaskResult:
        if task.workflow_id == "wf-slow":
            self.started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        return await _answer(task)


def _live_task(workflow_id: str, task_id: str) -> SearchTask:
    deadline = datetime.now(UTC) + timedelta(minutes=1)
    return SearchTask(
        workflow_id=workflow_id, task_id=task_id, attempt=1, deadline=deadline, query="q"
    )


def _event(workflow_id: str, event_type: str, version: int) -> RecordedEventMessage:
    return RecordedEventMessage(
        workflow_id=workflow_id,
        position=version,
        version=version,
        type=event_type,
        schema_version=1,
        data={},
        recorded_at=datetime.now(UTC),
    )


async def _running_worker(bus: InMemoryBus, agent: _SlowAgent) -> TaskWorker:
    worker = TaskWorker("search", SearchTask, agent.perform, bus, SystemClock())
    await bus.subscribe(worker.subscription())
    await bus.subscribe(worker.watch_subscription())
    return worker


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - polls counters the worker and broker keep
            await asyncio.sleep(0.01)


def _watched(bus: InMemoryBus, worker: TaskWorker) -> int:
    """How many workflow events the worker's watch group has handled (committed)."""
    group = worker.watch_subscription().group
    partitions = bus.broker.partitions_for(WORKFLOW_EVENTS)
    return sum(bus.broker.committed(group, WORKFLOW_EVENTS, p) for p in range(partitions))


@pytest.mark.parametrize(
    "event_type", ["WorkflowCancelled", "WorkflowFailed", "WorkflowCompleted", "WorkflowRolledBack"]
)
async def test_a_stopped_workflows_running_task_is_cancelled_without_a_result(
    event_type: str,
) -> None:
    """A stop event cancels the workflow's running perform; nothing is published for it."""
    agent = _SlowAgent()
    topics = [RESULTS, task_topic("search"), WORKFLOW_EVENTS]
    async with InMemoryBus(service="search", topics=topics) as bus:
        worker = await _running_worker(bus, agent)
        await bus.publish(task_topic("search"), _live_task("wf-slow", "search-v3"), key="wf-slow")
        await asyncio.wait_for(agent.started.wait(), 5)
        assert worker.in_flight() == {"wf-slow": 1}
        await bus.publish(WORKFLOW_EVENTS, _event("wf-slow", event_type, 5), key="wf-slow")
        await asyncio.wait_for(agent.cancelled.wait(), 5)
        # The worker moves on: the next task (another workflow) is answered.
        await bus.publish(task_topic("search"), _live_task("wf-next", "search-v3"), key="wf-next")
        await _until(lambda: worker.completed == 1)
        results = [json.loads(r.value or b"") for r in bus.records(RESULTS)]
    assert [r["workflow_id"] for r in results] == ["wf-next"]
    assert worker.abandoned == 1
    assert worker.in_flight() == {}


async def test_an_older_stop_event_spares_a_task_scheduled_after_it() -> None:
    """A rollback that arrives late does not cancel the re-run it scheduled itself."""
    agent = _SlowAgent()
    topics = [RESULTS, task_topic("search"), WORKFLOW_EVENTS]
    async with InMemoryBus(service="search", topics=topics) as bus:
        worker = await _running_worker(bus, agent)
        await bus.publish(task_topic("search"), _live_task("wf-slow", "search-v9"), key="wf-slow")
        await asyncio.wait_for(agent.started.wait(), 5)
        await bus.publish(
            WORKFLOW_EVENTS, _event("wf-slow", "WorkflowRolledBack", 8), key="wf-slow"
        )
        await bus.publish(WORKFLOW_EVENTS, _event("wf-slow", "TaskScheduled", 10), key="wf-slow")
        await _until(lambda: _watched(bus, worker) == 2)
        assert worker.in_flight() == {"wf-slow": 1}
        assert not agent.cancelled.is_set()
        await bus.publish(
            WORKFLOW_EVENTS, _event("wf-slow", "WorkflowCancelled", 11), key="wf-slow"
        )
        await asyncio.wait_for(agent.cancelled.wait(), 5)
    assert worker.abandoned == 1


async def test_a_task_queued_for_a_stopped_workflow_is_skipped() -> None:
    """A task that reaches the worker after its workflow stopped is not worked on."""
    async with InMemoryBus(service="search", topics=[RESULTS]) as bus:
        worker = TaskWorker("search", SearchTask, _answer, bus, SystemClock())
        await worker.watch(_delivery_of(_event("wf-w", "WorkflowCancelled", 7)))
        await worker.handle(_delivery(_live_task("wf-w", "search-v6")))
        await worker.handle(_delivery(_live_task("wf-w", "search-v8")))  # a re-run after it
        results = [json.loads(r.value or b"") for r in bus.records(RESULTS)]
    assert [r["task_id"] for r in results] == ["search-v8"]


def test_every_worker_process_watches_in_a_group_of_its_own() -> None:
    """Replicas each see every stop event: their watch groups differ; their task group is shared."""
    bus = InMemoryBus(service="search")
    one = TaskWorker("search", SearchTask, _answer, bus, FixedClock())
    two = TaskWorker("search", SearchTask, _answer, bus, FixedClock())
    assert one.subscription().group == two.subscription().group == "agentlog.search"
    assert one.watch_subscription().group != two.watch_subscription().group
    assert one.watch_subscription().group.startswith("agentlog.search.watch.")
    assert one.watch_subscription().topics == [WORKFLOW_EVENTS]


def _delivery_of(message: RecordedEventMessage) -> Delivery:
    return Delivery(
        message=message,
        topic=WORKFLOW_EVENTS,
        partition=0,
        offset=0,
        key=message.workflow_id,
        ce_id="evt",
        ce_type=message.TYPE,
        ce_source="test",
        ce_time=None,
        ce_subject=message.workflow_id,
    )


# --- the model agents' runtime: profiles and metering ---------------------------------------


async def _perform_with(settings: Settings, stack: contextlib.AsyncExitStack) -> Perform:
    return await model_agent(WriteTask, write_draft)(settings, stack)


async def test_a_fallback_task_runs_on_the_fallback_model() -> None:
    """profile="fallback" runs on the configured fallback; "primary" keeps the primary."""
    settings = Settings(
        llm_provider="openai",
        llm_model="remote",
        llm_base_url="http://127.0.0.1:9/v1",  # nothing listens: the primary is down
        llm_fallback_provider="offline",
        task_timeout_s=5,
    )
    async with contextlib.AsyncExitStack() as stack:
        perform = await _perform_with(settings, stack)
        result = await perform(write_task().model_copy(update={"profile": "fallback"}))
        with pytest.raises(ModelError) as caught:
            await perform(write_task())
    assert result.provenance.provider == "offline"
    assert result.provenance.prompt_tokens > 0
    assert result.provenance.cost_usd == 0
    assert caught.value.retryable
    assert caught.value.provenance is not None
    assert caught.value.provenance.model == "remote"


async def test_a_fallback_task_without_a_fallback_model_fails_for_good() -> None:
    """Asking for a fallback nobody configured is a final, clearly worded failure."""
    async with contextlib.AsyncExitStack() as stack:
        perform = await _perform_with(Settings(llm_provider="offline"), stack)
        with pytest.raises(ModelError, match="none is configured") as caught:
            await perform(write_task().model_copy(update={"profile": "fallback"}))
    assert caught.value.retryable is False
