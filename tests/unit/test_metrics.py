"""Metrics interceptors on the in-memory adapters, each on a fresh registry of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import prometheus_client
import pytest

from schemas.messages import Provenance, TaskCommand, TaskFailure, TaskResult
from schemas.topics import GOALS
from shared.eventstore import ConcurrencyConflictError, InMemoryEventStore, NewEvent
from shared.llm import Completion, CompletionRequest, LanguageModel, ModelError
from shared.llm.metering import MeteredModel
from shared.telemetry.metrics import Metrics
from shared.telemetry.metrics_bus import MetricsBus
from shared.telemetry.metrics_model import MetricsModel, timed_perform
from shared.telemetry.metrics_store import MetricsEventStore
from shared.transport import Delivery, InMemoryBus, RejectedError, RetryPolicy, Subscription
from tests.contracts.model import sample_requests
from tests.contracts.transport import ce_headers, goal
from tests.unit._agent_samples import write_task

PRICES = {"gpt-4o-mini": (0.15, 0.6)}
WAIT_S = 10.0


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    """One sample's value as a scrape would show it."""
    return metrics.registry.get_sample_value(name, labels)


async def test_appended_workflow_transitions_are_counted() -> None:
    """Started, pending approval (by kind), completed and failed count once per recorded event."""
    metrics = Metrics()
    async with InMemoryEventStore() as inner:
        store = _metered_store(inner, metrics)
        await store.append("wf-1", [NewEvent("WorkflowStarted", {})], 0)
        await store.append("wf-1", [NewEvent("ApprovalRequested", {"kind": "budget"})], 1)
        await store.append("wf-1", [NewEvent("WorkflowCompleted", {})], 2)
        await store.append("wf-2", [NewEvent("WorkflowForked", {})], 0)
        await store.append("wf-2", [NewEvent("WorkflowFailed", {})], 1)
        with pytest.raises(ConcurrencyConflictError):
            await store.append("wf-2", [NewEvent("WorkflowCancelled", {})], 1)
    assert sample(metrics, "agentlog_workflows_started_total") == 2
    assert sample(metrics, "agentlog_workflows_pending_approval_total", kind="budget") == 1
    assert sample(metrics, "agentlog_workflows_completed_total") == 1
    assert sample(metrics, "agentlog_workflows_failed_total") == 1
    # The refused append recorded nothing, so it counts nothing.
    assert sample(metrics, "agentlog_workflows_cancelled_total") == 0


async def test_relay_lag_is_the_head_minus_the_relay_checkpoint() -> None:
    """The lag gauge follows appends and the relay's checkpoint as it loads and saves it."""
    metrics = Metrics()
    async with InMemoryEventStore() as inner:
        store = _metered_store(inner, metrics)
        events = [NewEvent("WorkflowStarted", {}), NewEvent("TaskScheduled", {})]
        await store.append("wf-1", events, 0)
        assert await store.load_checkpoint("relay.supervisor") == 0
        assert sample(metrics, "agentlog_relay_lag_positions", checkpoint="relay.supervisor") == 2
        relayed = await store.read_all(0, limit=1)
        await store.save_checkpoint("relay.supervisor", relayed[-1].position)
        assert sample(metrics, "agentlog_relay_lag_positions", checkpoint="relay.supervisor") == 1


async def test_queue_wait_is_observed_per_agent_and_topic() -> None:
    """A delivery's wait from its publication to its handling lands in the histogram."""
    metrics = Metrics()
    # Handling "happens" 5 s after publication, as if the record sat in the queue.
    bus = MetricsBus(InMemoryBus(service="writer"), metrics, now=lambda: time.time() + 5.0)
    handled = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        handled.set()

    async with bus:
        await bus.subscribe(Subscription([GOALS], "agentlog.writer", handle, "writer"))
        await bus.publish(GOALS, goal("wait", "wf-1"), key="wf-1")
        await asyncio.wait_for(handled.wait(), WAIT_S)
    labels = {"agent": "writer", "topic": GOALS}
    assert sample(metrics, "agentlog_queue_wait_seconds_count", **labels) == 1
    waited = sample(metrics, "agentlog_queue_wait_seconds_sum", **labels)
    assert waited is not None
    assert 4.5 < waited < 60


async def test_dead_letters_are_counted_by_topic_and_reason() -> None:
    """A malformed record and a refused one count under their reasons; other observers hear too."""
    metrics = Metrics()
    inner = InMemoryBus(service="supervisor", topics=[GOALS], retry=RetryPolicy(tries=1))
    bus = MetricsBus(inner, metrics)
    heard: list[tuple[str, str]] = []

    async def refuse(delivery: Delivery) -> None:
        raise RejectedError("conflict", "another goal under this id")

    async with bus:
        await bus.subscribe(
            Subscription(
                [GOALS],
                "agentlog.supervisor",
                refuse,
                "supervisor",
                on_dead_letter=lambda topic, reason: heard.append((topic, reason)),
            )
        )
        inner.inject_raw(GOALS, "wf-1", b"{not json", ce_headers())
        await bus.publish(GOALS, goal("refused", "wf-2"), key="wf-2")
        await _until(lambda: len(inner.records(f"{GOALS}.dlq")) == 2)
    assert sample(metrics, "agentlog_dead_letters_total", topic=GOALS, reason="malformed") == 1
    assert sample(metrics, "agentlog_dead_letters_total", topic=GOALS, reason="conflict") == 1
    assert sorted(heard) == [(GOALS, "conflict"), (GOALS, "malformed")]


def test_consumer_lag_is_sampled_when_scraped() -> None:
    """Each scrape reads the lag sources anew; a failing source leaves the others' samples."""
    metrics = Metrics()
    lag = {("agentlog.writer", "agentlog.tasks.writer", 0): 7}

    def broken() -> dict[tuple[str, str, int], int]:
        raise RuntimeError("consumer gone")

    metrics.watch_consumer_lag(lambda: lag)
    metrics.watch_consumer_lag(broken)
    labels = {"group": "agentlog.writer", "topic": "agentlog.tasks.writer", "partition": "0"}
    assert sample(metrics, "agentlog_consumer_lag_records", **labels) == 7
    lag[("agentlog.writer", "agentlog.tasks.writer", 0)] = 2
    assert sample(metrics, "agentlog_consumer_lag_records", **labels) == 2


async def test_model_tokens_and_cost_are_counted_by_agent_and_model() -> None:
    """A priced call and a billed failure both add their tokens and cost."""
    metrics = Metrics()
    model = MetricsModel(MeteredModel(_Billed(), PRICES), metrics, agent="writer")
    failing = MetricsModel(MeteredModel(_Billed(fail=True), PRICES), metrics, agent="writer")
    request = sample_requests()[0]
    await model.complete(request)
    with pytest.raises(ModelError):
        await failing.complete(request)
    labels = {"agent": "writer", "model": "gpt-4o-mini"}
    assert sample(metrics, "agentlog_model_tokens_total", direction="input", **labels) == 1_002_000
    assert sample(metrics, "agentlog_model_tokens_total", direction="output", **labels) == 500_000
    cost = sample(metrics, "agentlog_model_cost_usd_total", **labels)
    assert cost == pytest.approx(0.15 + 0.3 + 2_000 * 0.15 / 1e6)


async def test_step_latency_is_observed_with_its_outcome() -> None:
    """Each perform is timed and labelled ok, error or cancelled."""
    metrics = Metrics()
    ticks = iter([0.0, 0.25, 1.0, 3.0, 10.0, 10.5])

    async def perform(task: TaskCommand) -> TaskResult:
        if task.attempt == 2:
            raise RuntimeError("agent failed")
        if task.attempt == 3:
            raise asyncio.CancelledError
        return TaskFailure(
            workflow_id=task.workflow_id,
            task_id=task.task_id,
            attempt=task.attempt,
            agent="writer",
            provenance=Provenance(provider="none", model="none", strategy_version="s"),
            error="a stand-in result",
        )

    timed = timed_perform(perform, metrics, agent="writer", clock=lambda: next(ticks))
    task = write_task()
    await timed(task)
    with pytest.raises(RuntimeError):
        await timed(task.model_copy(update={"attempt": 2}))
    with pytest.raises(asyncio.CancelledError):
        await timed(task.model_copy(update={"attempt": 3}))
    name = "agentlog_step_duration_seconds"
    assert sample(metrics, f"{name}_sum", agent="writer", outcome="ok") == 0.25
    assert sample(metrics, f"{name}_sum", agent="writer", outcome="error") == 2.0
    assert sample(metrics, f"{name}_count", agent="writer", outcome="cancelled") == 1


def test_families_live_on_the_process_registry_only() -> None:
    """Building metrics registers nothing on prometheus_client's global default registry."""
    metrics = Metrics()
    metrics.watch_consumer_lag(dict)
    for group in (metrics.store, metrics.steps, metrics.models):
        assert group is not None
    names = {family.name for family in metrics.registry.collect()}
    assert "agentlog_consumer_lag_records" in names
    assert not any(name.startswith("agentlog_") for name in _default_registry_names())
    # A second process-worth of metrics does not collide with the first.
    assert Metrics().transport is not None


def _default_registry_names() -> set[str]:
    return {family.name for family in prometheus_client.REGISTRY.collect()}


def _metered_store(inner: InMemoryEventStore, metrics: Metrics) -> MetricsEventStore:
    return MetricsEventStore(inner, metrics)


async def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


class _Billed(LanguageModel):
    """A stand-in remote model: fixed usage, or a failure that reports usage."""

    def __init__(self, *, fail: bool = False) -> None:
        self._fail = fail

    @property
    def provider(self) -> str:
        return "openai"

    @property
    def name(self) -> str:
        return "gpt-4o-mini"

    async def complete(self, request: CompletionRequest) -> Completion:
        if self._fail:
            raise ModelError("empty", retryable=True, prompt_tokens=2_000, completion_tokens=0)
        return Completion("text", self.provider, self.name, "s", 1_000_000, 500_000, False)
