"""Time travel with the five services as processes: rollback and fork through the CLI, the
Python client and plain aiokafka control messages; re-runs and forks seen on agentlog.completions
as a downstream system sees them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agentlog import Client
from schemas.messages import DraftResult, Provenance
from shared.auth import Signer
from shared.auth.keys import load_private_key
from shared.auth.settings import AuthSettings
from shared.eventstore import RecordedEvent, Tracking
from shared.eventstore.postgres import PostgresEventStore
from shared.runtime.processes import ServiceProcesses
from shared.settings import Settings
from shared.transport.envelope import encode_envelope
from tests.conftest import StackInfo
from tests.e2e.conftest import REPO
from tests.e2e.readers import read_from_start
from tests.e2e.upstream import publish_goal, sign_headers

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

COMPLETIONS, RESULTS, CONTROL = "agentlog.completions", "agentlog.results", "agentlog.control"
GOAL = "Explain how replay rebuilds workflow state"


@dataclass(frozen=True)
class _Completion:
    """A record of agentlog.completions: its CloudEvents id and its JSON body."""

    ce_id: str
    event: dict[str, object]


async def _completions(
    bootstrap: str, wanted: dict[str, int], timeout_s: float = 90
) -> dict[str, list[_Completion]]:
    """Every completion of the workflows in ``wanted``, in order, read with a plain consumer
    until each has at least the number asked for."""
    found: dict[str, list[_Completion]] = {w: [] for w in wanted}
    reader = read_from_start(bootstrap, COMPLETIONS, fetch_max_wait_ms=20)
    async with asyncio.timeout(timeout_s), reader as consumer:
        while any(len(found[w]) < n for w, n in wanted.items()):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    event = json.loads(record.value)
                    if event["workflow_id"] in found:
                        ce_id = dict(record.headers)["ce_id"].decode()
                        found[event["workflow_id"]].append(_Completion(ce_id, event))
    return found


async def _read(database_url: str, workflow_id: str) -> list[RecordedEvent]:
    async with PostgresEventStore(database_url, pool_max=1) as store:
        return await store.read(workflow_id)


async def _wait_for(
    database_url: str,
    workflow_id: str,
    done: Callable[[list[RecordedEvent]], bool],
    timeout_s: float = 60,
) -> list[RecordedEvent]:
    """The workflow's records once ``done`` holds for them."""
    async with PostgresEventStore(database_url, pool_max=1) as store, asyncio.timeout(timeout_s):
        while True:
            records = await store.read(workflow_id)
            if done(records):
                return records
            await asyncio.sleep(0.1)


def _version_of(records: Sequence[RecordedEvent], event_type: str) -> int:
    return next(r.version for r in records if r.type == event_type)


def _agents(records: Sequence[RecordedEvent]) -> list[str]:
    return [str(r.data["agent"]) for r in records if r.type == "TaskScheduled"]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``agentlog ARGS`` as a user runs it: its own process, configured by the environment."""
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def _same(records: Sequence[RecordedEvent]) -> list[tuple[object, ...]]:
    return [(r.event_id, r.version, r.type, r.data, r.hash) for r in records]


async def _dead_lettered(bootstrap: str, topic: str) -> set[str]:
    """The ce_ids on ``<topic>.dlq`` so far, read to its current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        dlq = f"{topic}.dlq"
        if dlq not in await consumer.topics():
            return set()
        partitions = [TopicPartition(dlq, p) for p in consumer.partitions_for_topic(dlq) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        seen: set[str] = set()
        async with asyncio.timeout(30):
            while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    seen.update(dict(r.headers).get("ce_id", b"").decode() for r in records)
        return seen
    finally:
        await consumer.stop()


async def _send_control(
    producer: AIOKafkaProducer, ce_type: str, payload: dict[str, object]
) -> str:
    """A control message from any operator tool: JSON, CloudEvents headers set by hand, signed
    as the ``operator`` principal, keyed by the workflow it is about; returns its ce_id."""
    workflow_id = str(payload["workflow_id"])
    ce_id = str(uuid.uuid4())
    value = json.dumps(payload).encode()
    headers = [
        ("ce_id", ce_id.encode()),
        ("ce_type", ce_type.encode()),
        ("ce_source", b"tests/operator-tool"),
        ("ce_specversion", b"1.0"),
        ("ce_time", datetime.now(UTC).isoformat().encode()),
        ("ce_subject", workflow_id.encode()),
        ("content-type", b"application/json"),
    ]
    key = workflow_id.encode()
    signed = sign_headers(headers, key, value, principal="operator")
    await producer.send_and_wait(CONTROL, value, key=key, headers=signed)
    return ce_id


async def test_rollback_of_a_finished_workflow_runs_the_writer_again_and_supersedes(
    services: ServiceProcesses,
    producer: AIOKafkaProducer,
    stack_info: StackInfo,
    service_env: dict[str, str],
) -> None:
    """`agentlog rollback --to <passages> --wait` appends WorkflowRolledBack, schedules no new
    search, runs writer and critic again, and a new completion (run 2) names the one it
    supersedes; versions 1..n stay as they were, now marked abandoned after the target."""
    workflow_id = await publish_goal(producer, GOAL)
    first = (await _completions(stack_info.kafka_bootstrap, {workflow_id: 1}))[workflow_id][0]
    before = await _read(stack_info.database_url, workflow_id)
    assert first.ce_id == before[-1].event_id  # the relay publishes under the terminal event id
    target = _version_of(before, "PassagesRetrieved")

    out = _cli(
        service_env,
        *("rollback", workflow_id, "--to", str(target), "--reason", "draft again"),
        *("--wait", "--json"),
    )
    assert out.returncode == 0, out.stderr
    waited = json.loads(out.stdout)
    assert (waited["outcome"], waited["run"], waited["supersedes"]) == ("completed", 2, first.ce_id)

    runs = (await _completions(stack_info.kafka_bootstrap, {workflow_id: 2}))[workflow_id]
    assert [c.event["run"] for c in runs] == [1, 2]
    assert runs[1].event["supersedes"] == first.ce_id
    assert runs[1].event["report"] == waited["report"]
    assert services.dead() == {}

    after = await _read(stack_info.database_url, workflow_id)
    assert _same(after[: len(before)]) == _same(before)
    added = after[len(before) :]
    assert added[0].type == "WorkflowRolledBack"
    assert added[0].data["to_version"] == target
    assert added[0].metadata["principal"] == "operator"
    assert "search" not in _agents(added)
    assert {"writer", "critic"} <= set(_agents(added))
    assert [r.type for r in added if r.type in ("DraftWritten", "CritiqueIssued")][:2] == [
        "DraftWritten",
        "CritiqueIssued",
    ]
    assert added[-1].type == "WorkflowCompleted"

    state = json.loads(
        _cli(service_env, "state", workflow_id, "--at", str(target), "--json").stdout
    )
    assert (state["status"], state["run"], state["drafts"]) == ("running", 1, [])
    assert state["passages"]
    rows = _json_lines(_cli(service_env, "history", workflow_id, "--json", "--full").stdout)
    assert [r["version"] for r in rows] == [r.version for r in after]
    assert {r["version"] for r in rows if r["abandoned"]} == set(range(target + 1, len(before) + 1))
    rolled = rows[len(before)]
    assert (rolled["type"], rolled["run"], rolled["principal"]) == (
        "WorkflowRolledBack",
        2,
        "operator",
    )
    assert rolled["causation_id"]
    assert rows[target - 1]["provenance"]  # PassagesRetrieved: who searched, at what cost


async def test_a_late_result_of_a_task_abandoned_in_flight_is_ignored(
    services: ServiceProcesses, producer: AIOKafkaProducer, stack_info: StackInfo
) -> None:
    """With the writer down, its task is in flight for sure; the Python client rolls back to
    the passages; the abandoned task's late (signed) result then changes nothing, is not
    dead-lettered as unknown, and the workflow completes with the new writer task."""
    database_url = stack_info.database_url
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap=stack_info.kafka_bootstrap,
        auth=AuthSettings(keys_dir=stack_info.keys_dir),
    )
    writer = Signer("writer", load_private_key(stack_info.keys_dir / "writer.key"))
    services.kill("writer")
    try:
        workflow_id = await publish_goal(
            producer, "Why does replay matter when auditing a workflow"
        )
        records = await _wait_for(database_url, workflow_id, lambda rs: "writer" in _agents(rs))
        in_flight = next(
            r for r in records if r.type == "TaskScheduled" and r.data["agent"] == "writer"
        )
        task_id = str(in_flight.data["task_id"])
        async with Client(settings) as client:
            caused_by = await client.rollback(
                workflow_id, _version_of(records, "PassagesRetrieved"), "writer is down"
            )
            # The late result must reach the supervisor after the rollback it is late for.
            await _wait_for(
                database_url, workflow_id, lambda rs: "WorkflowRolledBack" in [r.type for r in rs]
            )
            late = DraftResult(
                workflow_id=workflow_id,
                task_id=task_id,
                attempt=1,
                provenance=Provenance(provider="late", model="late", strategy_version="0"),
                draft="# A late draft",
            )
            envelope = encode_envelope(late, key=workflow_id, source="tests/late-writer")
            headers = list(envelope.headers)
            headers.append(
                ("agentlog-signature", writer.header(dict(headers), envelope.key, envelope.value))
            )
            await producer.send_and_wait(RESULTS, envelope.value, key=envelope.key, headers=headers)
            tracking = Tracking("supervisor", f"result/{workflow_id}/{task_id}/1")
            async with PostgresEventStore(database_url, pool_max=1) as store, asyncio.timeout(30):
                while True:
                    if await store.is_processed(tracking):
                        break
                    await asyncio.sleep(0.1)
    finally:
        services.restart("writer")
    async with Client(settings) as client:
        completion = await client.wait_for_completion(workflow_id, 90, caused_by=caused_by)
        history = await client.history(workflow_id, full=True)
    assert (completion.outcome, completion.run, completion.supersedes) == ("completed", 1, None)
    assert all(row["causation_id"] != envelope.ce_id for row in history)
    drafted = [
        cast(dict[str, Any], r["data"])["task_id"] for r in history if r["type"] == "DraftWritten"
    ]
    assert drafted
    assert task_id not in drafted
    assert next(r for r in history if r["version"] == in_flight.version)["abandoned"] is True
    assert envelope.ce_id not in await _dead_lettered(stack_info.kafka_bootstrap, RESULTS)
    assert services.dead() == {}


async def test_a_fork_after_the_search_with_a_new_constraint_and_its_diff(
    services: ServiceProcesses,
    producer: AIOKafkaProducer,
    stack_info: StackInfo,
    service_env: dict[str, str],
) -> None:
    """`agentlog fork --at <passages> -c ... --wait` starts a new workflow that schedules no
    search and completes (forked_from on its completion); `agentlog diff` names the first
    divergence, the writer task with the new constraint; the parent is untouched."""
    parent = await publish_goal(producer, GOAL)
    await _completions(stack_info.kafka_bootstrap, {parent: 1})
    before = await _read(stack_info.database_url, parent)
    target = _version_of(before, "PassagesRetrieved")
    fork_id = f"wf-test-fork-{uuid.uuid4().hex[:8]}"

    out = _cli(
        service_env,
        *("fork", parent, "--at", str(target), "--workflow-id", fork_id),
        *("-c", "avoid: simply", "--reason", "no 'simply'", "--wait", "--json"),
    )
    assert out.returncode == 0, out.stderr
    waited = json.loads(out.stdout)
    assert (waited["workflow_id"], waited["outcome"]) == (fork_id, "completed")
    assert (waited["forked_from"], waited["run"], waited["supersedes"]) == (parent, 1, None)
    published = (await _completions(stack_info.kafka_bootstrap, {fork_id: 1}))[fork_id][0]
    assert published.event["forked_from"] == parent

    forked = await _read(stack_info.database_url, fork_id)
    assert forked[0].type == "WorkflowForked"
    assert forked[0].data["parent_version"] == target
    assert forked[0].data["constraints"] == ["avoid: simply"]
    assert "search" not in _agents(forked)
    assert _agents(forked)[0] == "writer"
    assert _same(await _read(stack_info.database_url, parent)) == _same(before)

    diff = json.loads(_cli(service_env, "diff", parent, fork_id, "--json").stdout)
    assert (diff["diverged"], diff["common"]) == (True, target)
    assert diff["a"]["type"] == diff["b"]["type"] == "TaskScheduled"
    assert "command.constraints" in diff["changed"]
    assert {"aspect": "constraints", "a": "none", "b": "avoid: simply"} in diff["differences"]
    text = _cli(service_env, "diff", parent, fork_id).stdout
    assert f"share {target} steps, then part at step {target + 1}:" in text


async def test_plain_kafka_rollback_and_fork_control_messages_work_the_same(
    services: ServiceProcesses, producer: AIOKafkaProducer, stack_info: StackInfo
) -> None:
    """Rollback and fork published by a tool that knows only the wire format (JSON, CloudEvents
    headers, an operator signature) re-run the workflow (run 2 superseding run 1) and start a
    fork that schedules no search (forked_from on its completion)."""
    workflow_id = await publish_goal(producer, GOAL)
    first = (await _completions(stack_info.kafka_bootstrap, {workflow_id: 1}))[workflow_id][0]
    before = await _read(stack_info.database_url, workflow_id)
    target = _version_of(before, "PassagesRetrieved")
    fork_id = f"wf-test-plain-fork-{uuid.uuid4().hex[:8]}"

    rollback_id = await _send_control(
        producer,
        "agentlog.control.rollback.v1",
        {"workflow_id": workflow_id, "to_version": target, "reason": "sent with plain aiokafka"},
    )
    await _send_control(
        producer,
        "agentlog.control.fork.v1",
        {
            "workflow_id": fork_id,
            "parent_workflow_id": workflow_id,
            "at_version": target,
            "constraints": ["avoid: simply"],
            "reason": "sent with plain aiokafka",
        },
    )
    found = await _completions(stack_info.kafka_bootstrap, {workflow_id: 2, fork_id: 1})
    rerun = found[workflow_id][1].event
    assert (rerun["outcome"], rerun["run"], rerun["supersedes"]) == ("completed", 2, first.ce_id)
    forked = found[fork_id][0].event
    assert (forked["outcome"], forked["forked_from"]) == ("completed", workflow_id)

    after = await _read(stack_info.database_url, workflow_id)
    assert _same(after[: len(before)]) == _same(before)
    rolled = after[len(before)]
    assert rolled.type == "WorkflowRolledBack"
    assert rolled.metadata["causation_id"] == rollback_id
    assert rolled.metadata["principal"] == "operator"
    assert "search" not in _agents(after[len(before) :])
    fork_records = await _read(stack_info.database_url, fork_id)
    assert fork_records[0].type == "WorkflowForked"
    assert "search" not in _agents(fork_records)
