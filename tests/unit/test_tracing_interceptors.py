"""Tracing interceptors over the in-memory store, bus and model: spans, parents, workflow tags."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from schemas.events import ApprovalGranted, ApprovalRequested, WorkflowPolicy
from schemas.messages import ForkWorkflow, GoalSubmitted, SearchTask
from schemas.topics import GOALS, WORKFLOW_EVENTS, task_topic
from services.supervisor.handler import Supervisor
from services.supervisor.relay import OutboxRelay
from shared.domain import ForkRequested, GoalReceived, Tick
from shared.eventstore import InMemoryEventStore, NewEvent
from shared.llm.offline import OfflineModel
from shared.llm.port import CompletionRequest, ModelError
from shared.runtime.codec import encode_events
from shared.telemetry.exporters import WorkflowTagger
from shared.telemetry.spans import WORKFLOW_ATTRIBUTE
from shared.telemetry.tracing import Tracing
from shared.telemetry.tracing_flow import DecisionSpans, traced_perform
from shared.telemetry.tracing_model import TracingModel
from shared.telemetry.tracing_store import TracingEventStore
from shared.transport import Subscription
from shared.transport.memory import InMemoryBroker, InMemoryBus
from tests.contracts.transport import span_exporter

NOW = datetime(2026, 1, 1, tzinfo=UTC)
_tagged: list[bool] = []


class _FixedClock:
    """Always the same instant."""

    def now(self) -> datetime:
        return NOW


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The global SDK provider's in-memory exporter, emptied, with the workflow tagger on."""
    exporter = span_exporter()
    if not _tagged:
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider)
        provider.add_span_processor(WorkflowTagger())
        _tagged.append(True)
    exporter.clear()
    yield exporter
    exporter.clear()


def _named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def _one(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = _named(exporter, name)
    names = [s.name for s in exporter.get_finished_spans()]
    assert len(found) == 1, f"expected one {name!r} span, got {len(found)} among {names}"
    return found[0]


def _parent_of(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.parent is not None
    assert parent.context is not None
    return bool(child.parent.span_id == parent.context.span_id)


async def test_store_spans_only_inside_a_trace(spans: InMemorySpanExporter) -> None:
    """Appends and reads inside a trace get a tagged child span each; outside one, none."""
    store = TracingEventStore(InMemoryEventStore())

    def events() -> list[NewEvent]:
        return encode_events([_requested()], actor="t", causation_id=None)

    await store.append("wf-s", events(), 0)
    assert spans.get_finished_spans() == ()
    with trace.get_tracer("test").start_as_current_span("root") as root:
        await store.append("wf-s", events(), 1)
        await store.read("wf-s")
    append, read = _one(spans, "store append"), _one(spans, "store read")
    assert append.attributes is not None
    assert read.attributes is not None
    assert append.attributes[WORKFLOW_ATTRIBUTE] == "wf-s"
    assert append.attributes["agentlog.events"] == ("ApprovalRequested",)
    assert read.attributes["agentlog.records"] == 2
    assert append.parent is not None
    assert append.parent.span_id == root.get_span_context().span_id


async def test_model_call_span_follows_genai_conventions(spans: InMemorySpanExporter) -> None:
    """A model call is a CLIENT span named after the model, with provider, usage and prompt."""
    model = TracingModel(OfflineModel())
    completion = await model.complete(_summarize())
    span = _one(spans, f"chat {model.name}")
    attributes = dict(span.attributes or {})
    assert span.kind is trace.SpanKind.CLIENT
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "offline"
    assert attributes["gen_ai.request.model"] == model.name
    assert attributes["gen_ai.usage.input_tokens"] == completion.prompt_tokens
    assert attributes["gen_ai.usage.output_tokens"] == completion.completion_tokens
    assert attributes["agentlog.prompt.version"] == "1.0.0"


async def test_failed_model_call_is_an_error_span(spans: InMemorySpanExporter) -> None:
    """A ModelError marks the span as an error with its type and the tokens it used."""

    class _Failing(OfflineModel):
        async def complete(self, request: CompletionRequest) -> object:  # type: ignore[override]
            raise ModelError("overloaded", retryable=True, prompt_tokens=7)

    model = TracingModel(_Failing())
    with pytest.raises(ModelError):
        await model.complete(CompletionRequest(task="write", system="s", prompt="p"))
    span = _one(spans, f"chat {model.name}")
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "ModelError"
    assert (span.attributes or {})["gen_ai.usage.input_tokens"] == 7


async def test_goal_to_task_is_one_tagged_trace(spans: InMemorySpanExporter) -> None:
    """A goal's receipt, the decision, its append and the relayed task form one tagged tree."""
    broker = InMemoryBroker()
    tracing = Tracing(enabled=True)
    store = tracing.store(InMemoryEventStore())
    topics = [GOALS, WORKFLOW_EVENTS, task_topic("search")]
    supervisor = Supervisor(
        store, _FixedClock(), WorkflowPolicy(), decision_scope=tracing.decisions(store)
    )
    upstream = tracing.bus(InMemoryBus(service="upstream", broker=broker, topics=topics))
    bus = tracing.bus(InMemoryBus(service="supervisor", broker=broker, topics=topics))
    async with upstream, bus:
        await bus.subscribe(Subscription([GOALS], "g", supervisor.handle, "supervisor"))
        with trace.get_tracer("test").start_as_current_span("goal published"):
            goal = GoalSubmitted(workflow_id="wf-t", goal="explain replay")
            await upstream.publish(GOALS, goal, key="wf-t")
        await asyncio.wait_for(supervisor.committed.wait(), 10)
        relay = OutboxRelay(store, bus, supervisor.committed, trace_scope=tracing.relay())
        await relay.relay_batch()
    root = _one(spans, "goal published")
    decide, append = _one(spans, "decide goal"), _one(spans, "store append")
    relayed = _one(spans, "relay TaskScheduled")
    task_send = _one(spans, f"send {task_topic('search')}")
    assert _parent_of(append, decide)
    assert _parent_of(relayed, decide)
    assert _parent_of(task_send, relayed)
    assert root.context is not None
    for span in (decide, append, relayed, task_send, _one(spans, f"process {GOALS}")):
        assert span.context is not None
        assert span.context.trace_id == root.context.trace_id
        assert (span.attributes or {})[WORKFLOW_ATTRIBUTE] == "wf-t", span.name


async def test_a_tick_rejoins_the_workflows_trace(spans: InMemorySpanExporter) -> None:
    """A deadline tick, which no message carries, continues the trace of the latest event."""
    store = TracingEventStore(InMemoryEventStore())
    supervisor = Supervisor(
        store, _FixedClock(), WorkflowPolicy(), decision_scope=DecisionSpans(store)
    )
    with trace.get_tracer("test").start_as_current_span("goal") as root:
        await supervisor.execute("wf-k", _goal_trigger("wf-k"), None, "g1")
    spans.clear()
    later = NOW + timedelta(hours=1)
    await supervisor.execute("wf-k", Tick(later), None, None)
    tick = _one(spans, "decide tick")
    assert tick.context is not None
    assert tick.parent is not None
    assert tick.context.trace_id == root.get_span_context().trace_id


async def test_a_fork_links_to_its_parents_trace(spans: InMemorySpanExporter) -> None:
    """A fork's decision starts the new workflow's trace, linked to the parent's trace."""
    store = TracingEventStore(InMemoryEventStore())
    scope = DecisionSpans(store)
    with trace.get_tracer("test").start_as_current_span("parent goal") as parent:
        async with scope("wf-p", _goal_trigger("wf-p")):
            records = encode_events([_requested()], actor="t", causation_id=None)
            await store.append("wf-p", records, 0)
    fork = ForkWorkflow(parent_workflow_id="wf-p", workflow_id="wf-f", at_version=1)
    async with scope("wf-f", ForkRequested(fork, (), NOW)):
        pass
    decided = _one(spans, "decide fork")
    assert decided.context is not None
    assert decided.context.trace_id != parent.get_span_context().trace_id
    assert [link.context.trace_id for link in decided.links] == [parent.get_span_context().trace_id]


async def test_an_answered_approval_records_its_wait(spans: InMemorySpanExporter) -> None:
    """Granting a pending request records an ``approval wait`` span in the asking trace."""
    store = TracingEventStore(InMemoryEventStore())
    with trace.get_tracer("test").start_as_current_span("asked") as asked:
        requested = encode_events([_requested()], actor="t", causation_id=None)
        await store.append("wf-a", requested, 0)
    granted = ApprovalGranted(request_id="r1", approver="alice")
    await store.append("wf-a", encode_events([granted], actor="t", causation_id=None), 1)
    wait = _one(spans, "approval wait")
    attributes = dict(wait.attributes or {})
    assert wait.parent is not None
    assert wait.parent.span_id == asked.get_span_context().span_id
    assert attributes["agentlog.approval.outcome"] == "ApprovalGranted"
    assert attributes[WORKFLOW_ATTRIBUTE] == "wf-a"


async def test_agent_step_span_holds_the_model_call(spans: InMemorySpanExporter) -> None:
    """A worker's step is a span tagged with its task, and its model calls are children."""
    model = TracingModel(OfflineModel())

    async def perform(task: object) -> object:
        await model.complete(_summarize())
        return task

    traced = traced_perform("search", perform)  # type: ignore[arg-type]
    task = SearchTask(workflow_id="wf-w", task_id="search-v2", attempt=1, query="q", deadline=NOW)
    await traced(task)
    step, call = _one(spans, "step search"), _one(spans, f"chat {model.name}")
    assert _parent_of(call, step)
    assert (step.attributes or {})["agentlog.task_id"] == "search-v2"
    assert (call.attributes or {})[WORKFLOW_ATTRIBUTE] == "wf-w"


def test_tracing_off_wraps_nothing() -> None:
    """With tracing off, every port is handed back unchanged: no interceptor cost."""
    tracing = Tracing(enabled=False)
    store, model = InMemoryEventStore(), OfflineModel()
    assert tracing.store(store) is store
    assert tracing.model(model) is model
    assert tracing.relay() is None


def _goal_trigger(workflow_id: str) -> GoalReceived:
    return GoalReceived(
        GoalSubmitted(workflow_id=workflow_id, goal="explain replay"), WorkflowPolicy(), NOW
    )


def _requested() -> ApprovalRequested:
    return ApprovalRequested(
        request_id="r1", kind="step", step="write", summary="s", deadline=NOW + timedelta(hours=1)
    )


def _summarize() -> CompletionRequest:
    return CompletionRequest(
        task="summarize",
        system="s",
        prompt="p",
        context={"goal": "explain replay", "items": []},
        prompt_id="summarizer",
        prompt_version="1.0.0",
    )
