"""The plain-aiokafka examples speak agentlog's contract on a real broker.

The scripts run as subprocesses (as a user would run them) on topics of their own, so that
services other tests run in this session never see the test goal or the test completions;
a separate test pins the scripts' default topics to the contract's topic table.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas import Citation, CompletionEvent, GoalSubmitted, encode_message
from schemas.topics import COMPLETIONS, GOALS
from shared.auth import Keyring, Verifier
from tests.conftest import StackInfo

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# A guard against a hung subprocess, not a performance assertion.
HANG_GUARD_S = 60.0


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _run(script: str, *args: str, bootstrap: str) -> str:
    """Run an example script to completion; return its stdout (fail with its stderr)."""
    env = os.environ | {"AGENTLOG_KAFKA_BOOTSTRAP": bootstrap}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / script),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), HANG_GUARD_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, f"{script} failed:\n{stderr.decode()}"
    return stdout.decode()


@pytest.fixture
async def topic(stack_info: StackInfo) -> AsyncIterator[str]:
    """A fresh single-partition topic, created explicitly (auto-created ones get 4)."""
    name = f"test.examples.{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack_info.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        yield name
    finally:
        await admin.close()


def test_examples_default_to_the_contract_topics() -> None:
    """Without --topic the producer writes agentlog.goals and the consumer reads completions."""
    producer, consumer = _load("upstream_producer"), _load("downstream_consumer")
    assert producer.build_parser().parse_args(["a goal"]).topic == GOALS
    assert consumer.build_parser().parse_args([]).topic == COMPLETIONS
    assert producer.GOAL_TYPE == GoalSubmitted.TYPE
    assert consumer.COMPLETION_TYPE == CompletionEvent.TYPE


def test_examples_import_no_agentlog_code() -> None:
    """The examples depend only on aiokafka and the standard library (the contract is data)."""
    for script in ("upstream_producer.py", "downstream_consumer.py"):
        source = (EXAMPLES / script).read_text()
        for package in ("schemas", "shared", "services", "agentlog"):
            assert f"import {package}" not in source
            assert f"from {package}" not in source


async def test_producer_publishes_a_valid_goal_cloudevent(
    stack_info: StackInfo, topic: str
) -> None:
    """The producer's record is a GoalSubmitted with CloudEvents binary headers and key."""
    workflow_id = f"wf-example-{uuid.uuid4().hex[:8]}"
    stdout = await _run(
        "upstream_producer.py",
        "Compare event sourcing with CRUD for audit trails",
        "--constraint",
        "min sources: 2",
        "--requested-by",
        "test_examples",
        "--workflow-id",
        workflow_id,
        "--topic",
        topic,
        bootstrap=stack_info.kafka_bootstrap,
    )
    receipt = json.loads(stdout)
    assert (receipt["workflow_id"], receipt["topic"]) == (workflow_id, topic)

    consumer = AIOKafkaConsumer(bootstrap_servers=stack_info.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        partition = TopicPartition(topic, receipt["partition"])
        consumer.assign([partition])
        consumer.seek(partition, receipt["offset"])
        record = await asyncio.wait_for(consumer.getone(), HANG_GUARD_S)
    finally:
        await consumer.stop()

    goal = GoalSubmitted.model_validate_json(record.value)
    assert goal.workflow_id == workflow_id
    assert goal.constraints == ["min sources: 2"]
    assert goal.requested_by == "test_examples"
    assert record.key == workflow_id.encode()
    headers = {name: value.decode() for name, value in record.headers}
    assert headers["ce_type"] == GoalSubmitted.TYPE
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_subject"] == workflow_id
    assert headers["content-type"] == "application/json"
    assert headers["ce_source"]
    assert str(uuid.UUID(headers["ce_id"])) == receipt["ce_id"]
    assert datetime.fromisoformat(headers["ce_time"]).tzinfo is not None
    # The signature verifies with agentlog's own verifier: the wire format is the contract.
    keyring = Keyring.load(stack_info.keys_dir / "keyring.json")
    signed_at = datetime.fromisoformat(headers["ce_time"])
    principal = Verifier(keyring).verify(
        dict(record.headers), record.key, record.value, record_time=signed_at, signed_time=signed_at
    )
    assert principal.name == "upstream"


async def test_consumer_prints_the_completion_for_its_workflow(
    stack_info: StackInfo, topic: str
) -> None:
    """The consumer skips other workflows and other types, and prints the event it was asked for."""
    wanted = f"wf-example-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    other = CompletionEvent(
        workflow_id="wf-someone-else",
        outcome="failed",
        goal="Another goal",
        reason="budget exhausted",
        last_version=4,
        finished_at=now,
    )
    event = CompletionEvent(
        workflow_id=wanted,
        outcome="completed",
        goal="Compare event sourcing with CRUD",
        report="# Report\n\nEvent sourcing keeps every change [doc-1].",
        citations=[Citation(source_id="doc-1", title="Design")],
        revisions=1,
        manifest_version=2,
        last_version=17,
        finished_at=now,
    )
    producer = AIOKafkaProducer(bootstrap_servers=stack_info.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for message, ce_type in (
            (other, other.TYPE),
            (other, "agentlog.other.v1"),
            (event, event.TYPE),
        ):
            await producer.send_and_wait(
                topic,
                encode_message(message),
                key=message.workflow_id.encode(),
                headers=[("ce_type", ce_type.encode()), ("ce_specversion", b"1.0")],
            )
    finally:
        await producer.stop()

    stdout = await _run(
        "downstream_consumer.py",
        "--topic",
        topic,
        "--group",
        f"test-examples-{uuid.uuid4().hex[:8]}",
        "--workflow-id",
        wanted,
        "--count",
        "1",
        bootstrap=stack_info.kafka_bootstrap,
    )
    lines = stdout.splitlines()
    assert len(lines) == 1
    assert CompletionEvent.model_validate_json(lines[0]) == event
