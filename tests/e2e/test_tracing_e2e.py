"""One OpenTelemetry trace per workflow, as the five service processes export it over OTLP."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from shared.runtime.processes import SERVICES, ServiceProcesses
from shared.telemetry.spans import SpanRecord, render_span_tree
from tests.e2e.corpus import REVISE_GOAL
from tests.e2e.otlp import OtlpReceiver
from tests.e2e.upstream import GOALS_TOPIC, sign_headers

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
_WAIT_S = 90.0
# Broad enough to pass the memory limit, so the summarizer works on it too.
BROAD_GOAL: tuple[str, list[str]] = (
    "Summarize telemetry tracing sampling spans exporters and collectors",
    [],
)


async def _publish_traced_goal(
    producer: AIOKafkaProducer, provider: TracerProvider, goal: str, constraints: list[str]
) -> str:
    """An upstream system that traces: a ``goal published`` span, its traceparent in the
    record's headers (the signature covers the CloudEvents attributes, key and value)."""
    workflow_id = f"wf-trace-{uuid.uuid4().hex[:10]}"
    value = json.dumps(
        {"workflow_id": workflow_id, "goal": goal, "constraints": constraints}
    ).encode()
    headers = [
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_type", b"agentlog.goal.submitted.v1"),
        ("ce_source", b"tests/upstream"),
        ("ce_specversion", b"1.0"),
        ("ce_time", datetime.now(UTC).isoformat().encode()),
        ("ce_subject", workflow_id.encode()),
        ("content-type", b"application/json"),
    ]
    tracer = provider.get_tracer("tests.upstream")
    attributes = {"agentlog.workflow_id": workflow_id}
    with tracer.start_as_current_span("goal published", attributes=attributes) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        headers += [(k, v.encode()) for k, v in carrier.items()]
        key = workflow_id.encode()
        await producer.send_and_wait(
            GOALS_TOPIC, value, key=key, headers=sign_headers(headers, key, value)
        )
    return workflow_id


def _completed(spans: list[SpanRecord], workflow_id: str) -> bool:
    return any(s.name == "relay WorkflowCompleted" and s.workflow_id == workflow_id for s in spans)


async def test_each_workflow_is_one_trace_across_the_five_services(
    service_env: dict[str, str], producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    """A traced goal yields one tree per workflow: single root, no missing parent, all five
    services, and the decision, store, relay, agent-step and GenAI model-call spans."""
    with OtlpReceiver() as receiver:
        env = {
            **service_env,
            "AGENTLOG_OTEL_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms: spans arrive while the test waits
        }
        provider = TracerProvider(resource=Resource.create({"service.name": "upstream"}))
        endpoint = f"{receiver.endpoint}/v1/traces"
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        fleet = ServiceProcesses(env, tmp_path / "logs", cwd=REPO)
        fleet.start()
        try:
            broad = await _publish_traced_goal(producer, provider, *BROAD_GOAL)
            revised = await _publish_traced_goal(producer, provider, *REVISE_GOAL)
            async with asyncio.timeout(_WAIT_S):
                while not all(_completed(receiver.received(), w) for w in (broad, revised)):
                    assert not fleet.dead(), f"a service died: {fleet.dead()}"
                    await asyncio.sleep(0.2)  # polling what the services exported
        finally:
            # Off the event loop: each service flushes its last spans to the receiver as it
            # exits. The receiver has its own loop, so nothing here stalls their export.
            codes = await asyncio.to_thread(fleet.stop)
            provider.shutdown()
        assert all(code == 0 for code in codes.values()), f"unclean service exits: {codes}"
        spans = receiver.received()

    broad_tree, revised_tree = _tree(spans, broad), _tree(spans, revised)
    assert {s.trace_id for s in broad_tree}.isdisjoint(s.trace_id for s in revised_tree)
    services = {s.service.removeprefix("agentlog-") for s in broad_tree}
    assert set(SERVICES) <= services, f"services in the trace: {sorted(services)}"
    for tree in (broad_tree, revised_tree):
        _check_spans(tree)


def _tree(spans: list[SpanRecord], workflow_id: str) -> list[SpanRecord]:
    """The workflow's one trace, checked to be a single tree rooted at the goal's publishing."""
    traces = {s.trace_id for s in spans if s.workflow_id == workflow_id}
    assert len(traces) == 1, f"{workflow_id} spans {len(traces)} traces"
    tree = [s for s in spans if s.trace_id in traces]
    drawn = "\n".join(render_span_tree(tree))
    ids = {s.span_id for s in tree}
    roots = [s for s in tree if s.parent_id is None]
    assert [r.name for r in roots] == ["goal published"], drawn
    orphans = [s.name for s in tree if s.parent_id is not None and s.parent_id not in ids]
    assert orphans == [], drawn
    # Every span a service made for this workflow says so (the receipt of the goal included).
    untagged = [s.name for s in tree if s.service != "upstream" and s.workflow_id is None]
    assert untagged == [], untagged
    return tree


def _check_spans(tree: list[SpanRecord]) -> None:
    """The spans the issue names are there: decisions, store calls, relaying, agent steps,
    and GenAI model calls inside agent steps."""
    drawn = "\n".join(render_span_tree(tree))
    names = Counter(s.name for s in tree)
    for expected in ("decide goal", "decide result", "store append", "store read"):
        assert names[expected] >= 1, f"no {expected!r} span:\n{drawn}"
    for agent in ("search", "writer", "critic"):
        assert names[f"step {agent}"] >= 1, f"no step of {agent}:\n{drawn}"
    assert names["relay TaskScheduled"] >= 3, drawn
    calls = [s for s in tree if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert calls, f"no model call span:\n{drawn}"
    for call in calls:
        assert call.attributes["gen_ai.provider.name"] == "offline"
        assert call.attributes["gen_ai.usage.output_tokens"] > 0
        assert call.attributes["agentlog.prompt.version"]
        parent = next(s for s in tree if s.span_id == call.parent_id)
        assert parent.name.startswith("step "), f"{call.name} under {parent.name}"
