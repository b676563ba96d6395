"""The whole product: five service processes, goals in and completions out over plain Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.runtime.processes import ServiceProcesses
from tests.conftest import StackInfo
from tests.e2e.corpus import write_corpus

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

GOALS, COMPLETIONS = "agentlog.goals", "agentlog.completions"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def service_env(stack_info: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for the service processes: the session stack and a designed corpus."""
    corpus = write_corpus(tmp_path_factory.mktemp("corpus"))
    return {
        "AGENTLOG_DATABASE_URL": stack_info.database_url,
        "AGENTLOG_KAFKA_BOOTSTRAP": stack_info.kafka_bootstrap,
        "AGENTLOG_DOCS_DIR": str(corpus),
        "AGENTLOG_MEMORY_LIMIT_CHARS": "3000",
        "AGENTLOG_MANIFEST_BUDGET_CHARS": "1500",
        "AGENTLOG_TASK_TIMEOUT_S": "20",
    }


@pytest.fixture(scope="module")
def services(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcesses]:
    """The five services, each its own process, for the whole module."""
    fleet = ServiceProcesses(service_env, tmp_path_factory.mktemp("logs"), cwd=REPO)
    fleet.start()
    try:
        yield fleet
    finally:
        codes = fleet.stop()
        assert all(code == 0 for code in codes.values()), f"unclean service exits: {codes}"


@pytest.fixture
async def producer(stack_info: StackInfo) -> AsyncIterator[AIOKafkaProducer]:
    """A plain aiokafka producer: what any upstream system would use."""
    producer = AIOKafkaProducer(bootstrap_servers=stack_info.kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


async def _publish_goal(producer: AIOKafkaProducer, goal: str, constraints: list[str]) -> str:
    workflow_id = f"wf-e2e-{uuid.uuid4().hex[:10]}"
    payload = {"workflow_id": workflow_id, "goal": goal, "constraints": constraints}
    headers = [
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_type", b"agentlog.goal.submitted.v1"),
        ("ce_source", b"tests/e2e"),
        ("ce_specversion", b"1.0"),
        ("ce_time", datetime.now(UTC).isoformat().encode()),
        ("ce_subject", workflow_id.encode()),
        ("content-type", b"application/json"),
    ]
    await producer.send_and_wait(
        GOALS, json.dumps(payload).encode(), key=workflow_id.encode(), headers=headers
    )
    return workflow_id


async def _await_completions(
    bootstrap: str, workflow_ids: set[str], timeout_s: float
) -> dict[str, dict[str, object]]:
    """Read completion events with a plain consumer until every workflow has one."""
    consumer = AIOKafkaConsumer(
        COMPLETIONS,
        bootstrap_servers=bootstrap,
        group_id=f"e2e-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=2000,
        heartbeat_interval_ms=200,
        rebalance_timeout_ms=2000,
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    found: dict[str, dict[str, object]] = {}
    try:
        async with asyncio.timeout(timeout_s):
            while not workflow_ids <= found.keys():
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        headers = dict(record.headers)
                        assert headers["ce_type"] == b"agentlog.workflow.completed.v1"
                        event = json.loads(record.value)
                        if event["workflow_id"] in workflow_ids:
                            found[event["workflow_id"]] = event
    finally:
        await consumer.stop()
    return found


def _history(workflow_id: str, env: dict[str, str]) -> list[dict[str, object]]:
    out = subprocess.run(
        [sys.executable, "-m", "shared.cli", "history", workflow_id, "--json"],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[dict[str, object]] = json.loads(out.stdout)
    return rows


async def test_goals_in_completions_out_with_reflection_and_compaction(
    services: ServiceProcesses,
    producer: AIOKafkaProducer,
    stack_info: StackInfo,
    service_env: dict[str, str],
) -> None:
    """A revise-bait goal loops through the critic; a broad goal is compacted; both complete."""
    revise_wf = await _publish_goal(
        producer, "Explain how replay rebuilds workflow state", ["avoid: simply"]
    )
    broad_wf = await _publish_goal(
        producer, "Summarize telemetry tracing sampling spans exporters and collectors", []
    )
    completions = await _await_completions(stack_info.kafka_bootstrap, {revise_wf, broad_wf}, 75)
    assert services.dead() == {}, "a service died during the run"

    revised = completions[revise_wf]
    assert revised["outcome"] == "completed", revised["reason"]
    assert int(revised["revisions"]) >= 1  # type: ignore[call-overload]  # JSON value
    assert "simply" not in str(revised["report"]).lower()
    assert revised["citations"], "the report cites its sources"

    broad = completions[broad_wf]
    assert broad["outcome"] == "completed", broad["reason"]
    assert int(broad["manifest_version"]) >= 1  # type: ignore[call-overload]  # JSON value

    rows = _history(revise_wf, service_env)
    types = [str(r["type"]) for r in rows]
    assert [r["version"] for r in rows] == list(range(1, len(rows) + 1))
    positions = [int(r["position"]) for r in rows]  # type: ignore[call-overload]  # JSON value
    assert positions == sorted(positions)
    assert types[:2] == ["WorkflowStarted", "TaskScheduled"]
    assert types[-1] == "WorkflowCompleted"
    steps = [t for t in types if t != "TaskScheduled"]
    assert steps[:3] == ["WorkflowStarted", "PassagesRetrieved", "DraftWritten"]
    critiques = [r for r in rows if r["type"] == "CritiqueIssued"]
    assert "revise" in str(critiques[0]["summary"])
    assert "approved" in str(critiques[-1]["summary"])
    assert types.count("DraftWritten") == len(critiques) >= 2

    broad_types = [str(r["type"]) for r in _history(broad_wf, service_env)]
    assert "MemoryCompacted" in broad_types
    assert broad_types.index("MemoryCompacted") < broad_types.index("DraftWritten")
