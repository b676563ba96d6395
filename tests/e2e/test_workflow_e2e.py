"""The whole product: five service processes, goals in and completions out over plain Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from shared.runtime.processes import ServiceProcesses
from shared.runtime.registry import list_services
from tests.conftest import StackInfo
from tests.e2e.corpus import REVISE_GOAL
from tests.e2e.readers import read_from_start
from tests.e2e.upstream import publish_goal

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
# The core path (goals in, completions out, trace, dead letters, CLI, metrics) on both brokers.
BROKERS = ("tansu", "kafka")

GOALS, COMPLETIONS = "agentlog.goals", "agentlog.completions"
REPO = Path(__file__).resolve().parents[2]


async def _await_completions(
    bootstrap: str, workflow_ids: set[str], timeout_s: float
) -> dict[str, dict[str, object]]:
    """Read completion events with a plain consumer until every workflow has one."""
    found: dict[str, dict[str, object]] = {}
    async with (
        asyncio.timeout(timeout_s),
        read_from_start(bootstrap, COMPLETIONS, fetch_max_wait_ms=20) as consumer,
    ):
        while not workflow_ids <= found.keys():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    headers = dict(record.headers)
                    assert headers["ce_type"] == b"agentlog.workflow.completed.v2"
                    event = json.loads(record.value)
                    if event["workflow_id"] in workflow_ids:
                        found[event["workflow_id"]] = event
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
    # JSON Lines: one event per line, for jq.
    rows: list[dict[str, object]] = [json.loads(line) for line in out.stdout.splitlines()]
    return rows


async def test_goals_in_completions_out_with_reflection_and_compaction(
    services: ServiceProcesses,
    producer: AIOKafkaProducer,
    stack_info: StackInfo,
    service_env: dict[str, str],
) -> None:
    """A revise-bait goal loops through the critic; a broad goal is compacted; both complete."""
    revise_wf = await publish_goal(producer, *REVISE_GOAL)
    broad_wf = await publish_goal(
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


def _trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]


async def test_one_trace_follows_a_workflow_across_services(
    services: ServiceProcesses, producer: AIOKafkaProducer, stack_info: StackInfo
) -> None:
    """Every recorded event of a workflow carries the same W3C trace id, hop after hop."""
    from shared.eventstore.postgres import PostgresEventStore

    workflow_id = await publish_goal(producer, "Explain how replay rebuilds workflow state", [])
    await _await_completions(stack_info.kafka_bootstrap, {workflow_id}, 60)
    async with PostgresEventStore(stack_info.database_url, pool_max=1) as store:
        records = await store.read(workflow_id)
    parents = [r.metadata["trace_context"]["traceparent"] for r in records]
    assert len(records) >= 6
    assert len({_trace_id(p) for p in parents}) == 1
    # The results came back through different services, so the spans differ.
    assert len({p.split("-")[2] for p in parents}) > 1


async def test_bad_records_are_dead_lettered_and_the_supervisor_keeps_working(
    services: ServiceProcesses, producer: AIOKafkaProducer, stack_info: StackInfo
) -> None:
    """Malformed and unknown goals land on agentlog.goals.dlq; a valid goal after them completes."""
    marker = uuid.uuid4().hex
    await producer.send_and_wait(
        GOALS,
        b"\xff{not json",
        key=b"bad",
        headers=[
            ("ce_id", marker.encode()),
            ("ce_type", b"agentlog.goal.submitted.v1"),
            ("ce_source", b"t"),
            ("ce_specversion", b"1.0"),
        ],
    )
    await producer.send_and_wait(
        GOALS,
        b"{}",
        key=b"bad",
        headers=[
            ("ce_id", f"{marker}-2".encode()),
            ("ce_type", b"agentlog.goal.exploded.v9"),
            ("ce_source", b"t"),
            ("ce_specversion", b"1.0"),
        ],
    )
    workflow_id = await publish_goal(producer, "Explain how replay rebuilds workflow state", [])
    completions = await _await_completions(stack_info.kafka_bootstrap, {workflow_id}, 60)
    assert completions[workflow_id]["outcome"] == "completed"

    reasons: dict[str, bytes] = {}
    async with (
        asyncio.timeout(30),
        read_from_start(stack_info.kafka_bootstrap, f"{GOALS}.dlq") as consumer,
    ):
        while len(reasons) < 2:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    headers = dict(record.headers)
                    if headers["ce_id"].decode().startswith(marker):
                        assert headers["dlq_service"] == b"supervisor"
                        assert headers["dlq_origin_topic"] == GOALS.encode()
                        reasons[headers["ce_id"].decode()] = headers["dlq_reason"]
    assert reasons == {marker: b"malformed", f"{marker}-2": b"unknown-type"}
    assert services.dead() == {}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_submit_wait_status_and_list(
    services: ServiceProcesses, service_env: dict[str, str]
) -> None:
    """`agentlog submit --wait --json` prints the completion and, with tracing on, exports the
    span that roots the workflow's trace; status and list agree; the same goal again is
    idempotent, another goal under its id and an unknown constraint are refused."""
    workflow_id = f"wf-cli-{uuid.uuid4().hex[:8]}"
    traced = {**service_env, "AGENTLOG_OTEL_EXPORTER": "file"}
    submitted = _cli(
        traced,
        "submit",
        "Explain how replay rebuilds workflow state",
        "--workflow-id",
        workflow_id,
        "--constraint",
        "max words: 400",
        "--wait",
        "--json",
    )
    assert submitted.returncode == 0, submitted.stderr
    completion = json.loads(submitted.stdout)
    assert completion["workflow_id"] == workflow_id
    assert completion["outcome"] == "completed"
    assert completion["report"].startswith("# ")
    shown = _cli(traced, "trace", workflow_id)
    assert shown.returncode == 0, shown.stderr
    assert "goal published  [cli]" in shown.stdout

    status = json.loads(_cli(service_env, "status", workflow_id, "--json").stdout)
    assert status["status"] == "completed"
    assert status["version"] == completion["last_version"]
    assert status["open_tasks"] == []

    listed = json.loads(_cli(service_env, "list", "--json", "--limit", "100").stdout)
    assert {"workflow_id": workflow_id, "state": "completed"}.items() <= next(
        row for row in listed if row["workflow_id"] == workflow_id
    ).items()

    missing = _cli(service_env, "status", "wf-does-not-exist", "--json")
    assert missing.returncode == 1

    again = _cli(
        service_env,
        "submit",
        "Explain how replay rebuilds workflow state",
        "--workflow-id",
        workflow_id,
        "--constraint",
        "max words: 400",
        "--wait",
        "--json",
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["last_version"] == completion["last_version"]
    conflict = _cli(service_env, "submit", "Explain something else", "--workflow-id", workflow_id)
    assert conflict.returncode == 1
    assert "already exists" in conflict.stderr
    unknown = _cli(service_env, "submit", "Explain replay", "-c", "max word: 50")
    assert unknown.returncode == 2
    assert "known forms" in unknown.stderr


async def test_every_service_serves_its_metrics(
    services: ServiceProcesses,
    producer: AIOKafkaProducer,
    stack_info: StackInfo,
    service_env: dict[str, str],
) -> None:
    """Each service's registry file names its /metrics address; after a completed workflow the
    scrapes show workflows, step latencies, queue waits, model tokens and consumer lag."""
    workflow_id = await publish_goal(producer, "Explain how replay rebuilds workflow state", [])
    await _await_completions(stack_info.kafka_bootstrap, {workflow_id}, 60)
    pids = {proc.pid: name for name, proc in services.processes.items()}
    state_dir = Path(service_env["AGENTLOG_STATE_DIR"])
    records = {pids[r.pid]: r for r in list_services(state_dir) if r.pid in pids}
    assert records.keys() == set(pids.values())
    scraped: dict[str, dict[str, Metric]] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for name, record in records.items():
            assert record.metrics is not None, f"{name} names no metrics address"
            assert record.metrics.startswith("http://127.0.0.1:")
            response = await client.get(record.metrics)
            assert response.status_code == 200
            scraped[name] = {f.name: f for f in text_string_to_metric_families(response.text)}

    def total(service: str, family: str, sample: str, **labels: str) -> float:
        return sum(
            s.value
            for s in scraped[service][family].samples
            if s.name == sample and labels.items() <= s.labels.items()
        )

    supervisor = "supervisor"
    assert total(supervisor, "agentlog_workflows_started", "agentlog_workflows_started_total") >= 1
    assert (
        total(supervisor, "agentlog_workflows_completed", "agentlog_workflows_completed_total") >= 1
    )
    assert "agentlog_workflows_failed" in scraped[supervisor]
    assert "agentlog_workflows_pending_approval" in scraped[supervisor]
    assert "agentlog_dead_letters" in scraped[supervisor]
    [relay] = scraped[supervisor]["agentlog_relay_lag_positions"].samples
    assert relay.labels == {"checkpoint": "relay.supervisor"}
    lag_groups = {
        s.labels["group"] for s in scraped[supervisor]["agentlog_consumer_lag_records"].samples
    }
    assert "agentlog.supervisor" in lag_groups
    wait = "agentlog_queue_wait_seconds"
    assert total(supervisor, wait, f"{wait}_count", topic=GOALS) >= 1
    step = "agentlog_step_duration_seconds"
    for agent in ("search", "writer", "critic"):
        assert total(agent, step, f"{step}_count", agent=agent, outcome="ok") >= 1, agent
        assert total(agent, wait, f"{wait}_count", topic=f"agentlog.tasks.{agent}") >= 1, agent
    assert step in scraped["summarizer"]
    tokens = "agentlog_model_tokens"
    for agent in ("writer", "critic"):
        assert total(agent, tokens, f"{tokens}_total", agent=agent, direction="input") > 0, agent
        assert "agentlog_model_cost_usd" in scraped[agent]
