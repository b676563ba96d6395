"""An API key the provider echoes back never leaves a service: not in logs, spans, events, topics.

The five services run as processes with the OpenAI-compatible adapter pointed at a fake
provider that repeats the caller's key in every error (tests/contracts/echoing_provider.py).
One goal meets a 401 (the key is refused), one a 500 (a server error); afterwards every log
file (spans included: they are exported to stdout), every stored event and every record on
every agentlog topic, DLQs included, is searched for the key.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.eventstore.postgres import PostgresEventStore
from shared.runtime.processes import ServiceProcesses
from tests.conftest import StackInfo
from tests.contracts.echoing_provider import EchoingProvider
from tests.e2e.readers import read_from_start
from tests.e2e.upstream import publish_goal

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
COMPLETIONS = "agentlog.completions"
MODEL = "echo-model"
GOAL = "Explain how replay rebuilds workflow state"


@pytest.fixture(scope="module")
def provider() -> Iterator[EchoingProvider]:
    """The fake provider, for this module."""
    fake = EchoingProvider()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def secret_env(service_env: dict[str, str], provider: EchoingProvider) -> dict[str, str]:
    """The shared service environment plus the remote model, its key, console spans, DEBUG."""
    return {
        **service_env,
        "AGENTLOG_LLM_PROVIDER": "openai",
        "AGENTLOG_LLM_MODEL": MODEL,
        "AGENTLOG_LLM_BASE_URL": provider.base_url,
        "AGENTLOG_LLM_API_KEY": f"sk-e2e-{secrets.token_hex(24)}",
        "AGENTLOG_OTEL_EXPORTER": "console",
        # A task failing all its attempts escalates to a human; nobody answers here, so the
        # workflow fails at the (short) approval deadline with the escalation's reason.
        "AGENTLOG_APPROVAL_TIMEOUT_S": "1",
        # DEBUG: the SDK and HTTP client log requests and responses too; all must be clean.
        "AGENTLOG_LOG_LEVEL": "DEBUG",
    }


async def _await_outcome(bootstrap: str, workflow_id: str, timeout_s: float) -> dict[str, Any]:
    """The workflow's completion event, read with a plain consumer."""
    reader = read_from_start(bootstrap, COMPLETIONS, fetch_max_wait_ms=20)
    async with asyncio.timeout(timeout_s), reader as consumer:
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    event: dict[str, Any] = json.loads(record.value or b"{}")
                    if event.get("workflow_id") == workflow_id:
                        return event


async def _every_record(bootstrap: str) -> dict[str, list[bytes]]:
    """Every record on every agentlog topic, as key, value and headers bytes, by topic."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        topics = sorted(t for t in await consumer.topics() if t.startswith("agentlog."))
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: dict[str, list[bytes]] = {topic: [] for topic in topics}
        async with asyncio.timeout(60):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                batches = await consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    for record in records:
                        parts = [record.key or b"", record.value or b""]
                        parts += [name.encode() + b"=" + value for name, value in record.headers]
                        found[tp.topic].append(b"\n".join(parts))
        return found
    finally:
        await consumer.stop()


async def _stored_events(database_url: str) -> list[dict[str, Any]]:
    """Every event in the store, every stream, as plain dicts."""
    events: list[dict[str, Any]] = []
    async with PostgresEventStore(database_url, pool_max=1) as store:
        position = 0
        while batch := await store.read_all(after_position=position, limit=1000):
            events += [
                {"stream": r.stream_id, "type": r.type, "data": r.data, "meta": r.metadata}
                for r in batch
            ]
            position = batch[-1].position
    return events


async def test_an_echoed_api_key_reaches_no_log_span_event_or_topic(
    secret_env: dict[str, str],
    provider: EchoingProvider,
    producer: AIOKafkaProducer,
    stack_info: StackInfo,
    tmp_path: Path,
) -> None:
    """A 401 fails the workflow at once with a clear reason, a 500 after retries; no key leaks."""
    key = secret_env["AGENTLOG_LLM_API_KEY"]
    host = provider.base_url.removeprefix("http://").removesuffix("/v1")
    log_dir = tmp_path / "logs"
    fleet = ServiceProcesses(secret_env, log_dir, cwd=REPO)
    fleet.start()
    try:
        provider.mode = "401"
        rejected_wf = await publish_goal(producer, GOAL, [])
        rejected = await _await_outcome(stack_info.kafka_bootstrap, rejected_wf, 90)
        calls_for_401 = len(provider.keys_seen)

        provider.mode = "500"
        broken_wf = await publish_goal(producer, GOAL, [])
        broken = await _await_outcome(stack_info.kafka_bootstrap, broken_wf, 120)
        assert fleet.dead() == {}, "a service died during the run"
    finally:
        codes = fleet.stop()
    assert all(code == 0 for code in codes.values()), f"unclean service exits: {codes}"

    # The services really sent the key, and the provider really sent it back.
    assert set(provider.keys_seen) == {key}
    assert all(key in body for body in provider.bodies_sent)

    assert rejected["outcome"] == "failed"
    assert calls_for_401 == 1, "a refused key is not retried"
    assert (
        f"the model provider rejected the API key for model '{MODEL}' at {host} (HTTP 401)"
        in rejected["reason"]
    )
    assert "writer task" in rejected["reason"]
    assert "after attempt 1" in rejected["reason"]

    assert broken["outcome"] == "failed"
    assert "HTTP 500" in broken["reason"]
    assert "after attempt 3" in broken["reason"]

    events = await _stored_events(stack_info.database_url)
    by_type = {
        wf: [e["type"] for e in events if e["stream"] == wf] for wf in (rejected_wf, broken_wf)
    }
    assert by_type[rejected_wf].count("TaskFailed") == 1
    assert by_type[rejected_wf][-1] == "WorkflowFailed"
    assert by_type[broken_wf].count("TaskFailed") == 3
    [refusal] = [
        e["data"] for e in events if e["stream"] == rejected_wf and e["type"] == "TaskFailed"
    ]
    assert refusal["retryable"] is False
    assert key not in json.dumps(events, default=str)

    records = await _every_record(stack_info.kafka_bootstrap)
    for topic in ("agentlog.results", "agentlog.completions", "agentlog.workflow-events"):
        assert records.get(topic), f"nothing on {topic}: the scan would prove nothing"
    leaked = [topic for topic, values in records.items() if any(key.encode() in v for v in values)]
    assert leaked == []

    logs = {path.name: path.read_text(errors="replace") for path in log_dir.glob("*.log")}
    assert len(logs) == 5
    assert [name for name, text in logs.items() if key in text] == []
    writer_log = logs["writer.log"]
    # What was logged and exported is really there, with the key cut out of it.
    assert "Incorrect API key provided: ***" in writer_log
    assert "Internal error while checking the request signed with ***" in writer_log
    assert '"trace_id"' in writer_log, "spans were exported to the log"
