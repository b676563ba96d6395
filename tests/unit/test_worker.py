"""The worker runtime: answers every live task, skips expired ones, never loses a result."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from schemas.messages import SearchResult, SearchTask, TaskCommand, TaskResult
from schemas.topics import RESULTS, task_topic
from shared.runtime.worker import TaskWorker, result_id
from shared.transport import Delivery, TransientError
from shared.transport.memory import InMemoryBus

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
    from schemas.messages import Provenance

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


async def test_unpublishable_result_is_a_transient_error() -> None:
    """When the result cannot be sent the task is retried (TransientError), not acknowledged."""
    bus = InMemoryBus(service="search", topics=[RESULTS])  # never started: publish fails
    worker = TaskWorker("search", SearchTask, _answer, bus, FixedClock())
    with pytest.raises(TransientError):
        await worker.handle(_delivery(_task(NOW + timedelta(seconds=5))))
