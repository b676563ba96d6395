"""The embedded stack with Apache Kafka as its broker: the transport contract, `stack status`,
and data that survives `stack down` + `stack up` and a crash (unlike Tansu).

Needs Java 17+ and Maven (or jars already cached); skips, saying so, where they are missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from schemas.messages import GoalSubmitted
from shared.stack import EmbeddedStack, Outcome
from shared.stack.process import find_free_port, wait_until
from shared.stack.state import BrokerKind
from shared.transport import KafkaBus
from shared.transport.admin import supports_idempotence
from tests.contracts.transport import TransportContract, TransportHarness
from tests.integration.test_transport_kafka import KafkaHarness
from tests.kafka_available import needs_kafka

pytestmark = pytest.mark.integration

_CLI = "from shared.cli.stack import stack_app; stack_app(prog_name='agentlog stack')"


def _up(stack: EmbeddedStack) -> float:
    started = time.monotonic()
    stack.up()
    return time.monotonic() - started


@pytest.fixture(scope="module")
def kafka_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """A stack whose broker is Apache Kafka, for the whole module."""
    stack = EmbeddedStack(tmp_path_factory.mktemp("kafka") / ".agentlog", broker="kafka")
    try:  # a failed `up` may have started Postgres already
        print(f"kafka stack up in {_up(stack):.1f} s")
        yield stack
    finally:
        stack.down()


@pytest.fixture
def bootstrap(kafka_stack: EmbeddedStack) -> str:
    """The Kafka stack's bootstrap servers."""
    servers = kafka_stack.status().kafka_bootstrap
    assert servers is not None
    return servers


@needs_kafka
class TestKafkaBrokerTransport(TransportContract):
    """Runs the transport contract on KafkaBus against Apache Kafka."""

    @pytest.fixture
    def harness(self, bootstrap: str) -> TransportHarness:
        """A harness on the module's Kafka stack."""
        return KafkaHarness(bootstrap)


def _cli(state_dir: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLOG_")}
    env["AGENTLOG_STATE_DIR"] = str(state_dir)
    if path is not None:  # a machine without Java
        env["PATH"] = path
        env.pop("JAVA_HOME", None)
    return subprocess.run(
        [sys.executable, "-c", _CLI, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@needs_kafka
async def test_the_producer_is_idempotent_on_apache_kafka(bootstrap: str) -> None:
    """Apache Kafka hands out producer ids, so the bus's producer is idempotent there."""
    assert await supports_idempotence(bootstrap)
    topic = f"t-idem-{uuid.uuid4().hex[:8]}"
    async with KafkaBus(bootstrap, service="s", topics=[topic]) as bus:
        await bus.publish(
            topic, GoalSubmitted(workflow_id="wf-idem", goal="explain replay"), key="wf-idem"
        )
        assert bus.health()["idempotent_producer"] is True


@needs_kafka
def test_status_reports_the_kafka_broker_healthy(kafka_stack: EmbeddedStack) -> None:
    """`stack status --json` names the kafka broker and reports it healthy."""
    done = _cli(kafka_stack.state_dir, "status", "--json")
    status = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr
    assert status["running"] is True
    assert status["broker_kind"] == "kafka"
    assert status["broker"]["healthy"] is True
    assert status["broker"]["detail"].startswith("Apache Kafka 4.")


@needs_kafka
def test_asking_for_tansu_while_kafka_runs_is_one_clear_error(kafka_stack: EmbeddedStack) -> None:
    """`stack up --broker tansu` on a running Kafka stack exits 1 with one line, starting
    nothing."""
    before = kafka_stack.status()
    done = _cli(kafka_stack.state_dir, "up", "--broker", "tansu")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: a kafka broker is running in {kafka_stack.state_dir}: stop the stack"
        " (`agentlog stack down`) before starting it with tansu"
    ]
    assert kafka_stack.status().broker.pid == before.broker.pid


@needs_kafka
def test_up_without_a_choice_keeps_the_running_kafka(kafka_stack: EmbeddedStack) -> None:
    """A plain `stack up` leaves the running Kafka alone instead of switching to Tansu."""
    before = kafka_stack.status()
    info = EmbeddedStack(kafka_stack.state_dir).up()
    assert info.broker_kind is BrokerKind.KAFKA
    assert info.broker.outcome is Outcome.ALREADY_RUNNING
    assert info.broker.pid == before.broker.pid


def test_kafka_without_java_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    """`stack up --broker kafka` where there is no Java exits 1 with one line naming Java,
    before Postgres or anything else is started."""
    state_dir = tmp_path / ".agentlog"
    done = _cli(state_dir, "up", "--broker", "kafka", path="/nonexistent")
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: the kafka broker needs Java 17+, but `java` is not on PATH")
    assert not (state_dir / "stack.json").exists()
    assert not (state_dir / "pgdata").exists()


@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """A Kafka stack of its own, which these tests stop, kill and start again."""
    stack = EmbeddedStack(tmp_path_factory.mktemp("restart") / ".agentlog", broker="kafka")
    try:  # a failed `up` may have started Postgres already
        stack.up()
        yield stack
    finally:
        stack.down()


async def _write_and_commit(bootstrap: str, topic: str, group: str) -> None:
    """Topic with 3 partitions, 10 records on partition 0, the group's offset committed at 6."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(10):
            await producer.send_and_wait(topic, f"r{n}".encode(), partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=2000,
        heartbeat_interval_ms=200,
    )
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=5000)  # joins the group
        await consumer.commit({TopicPartition(topic, 0): 6})
    finally:
        await consumer.stop()


async def _what_survived(bootstrap: str, topic: str, group: str) -> tuple[int, list[str], bool]:
    """The topic's partition count, what the group reads next, and whether the group exists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=2000,
        heartbeat_interval_ms=200,
    )
    await consumer.start()
    values: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while len(values) < 4 and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                values.extend(r.value.decode() for r in batch)
    finally:
        await consumer.stop()
    return len(described["partitions"]), values, await _group_listed(bootstrap, group)


async def _group_listed(bootstrap: str, group: str) -> bool:
    """Whether the broker lists the group; polled, since right after a restart the coordinator
    lists groups only once it has loaded the offsets topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            if group in await _group_ids(admin):
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def _group_ids(admin: AIOKafkaAdminClient) -> set[str]:
    # Just after a start the coordinator is still loading the offsets topic and says so
    # (GroupLoadInProgress, retriable); consumers retry that by themselves, the admin does not.
    deadline = time.monotonic() + 20
    while True:
        try:
            return {g[0] for g in await admin.list_consumer_groups()}
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


def _bootstrap(stack: EmbeddedStack) -> str:
    servers = stack.status().kafka_bootstrap
    assert servers is not None
    return servers


@needs_kafka
async def test_topics_offsets_and_groups_survive_down_and_up(restartable: EmbeddedStack) -> None:
    """After `stack down` and `stack up --broker kafka`, a topic, its group and the group's
    committed offset are all still there (Tansu would have lost them)."""
    topic, group = f"keep.{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    await _write_and_commit(_bootstrap(restartable), topic, group)
    old = restartable.status().broker.pid
    await asyncio.to_thread(restartable.down)
    assert old is not None
    assert not psutil.pid_exists(old) or psutil.Process(old).status() == psutil.STATUS_ZOMBIE
    started = time.monotonic()
    info = await asyncio.to_thread(EmbeddedStack(restartable.state_dir, broker="kafka").up)
    print(f"kafka stack up again (data kept) in {time.monotonic() - started:.1f} s")
    assert info.broker.outcome is Outcome.STARTED
    partitions, next_values, group_known = await _what_survived(info.kafka_bootstrap, topic, group)
    assert (partitions, next_values, group_known) == (3, ["r6", "r7", "r8", "r9"], True)


@needs_kafka
async def test_a_killed_kafka_is_restarted_with_its_data(restartable: EmbeddedStack) -> None:
    """`stack up` restarts a SIGKILLed Kafka on its old port, reports no data lost, and the
    topic and committed offset are still there."""
    topic, group = f"crash.{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    before = restartable.status()
    assert before.broker.pid is not None
    await _write_and_commit(_bootstrap(restartable), topic, group)
    os.kill(before.broker.pid, signal.SIGKILL)
    # The dead JVM lets go of its port a moment after it stops answering.
    port = before.broker.port
    assert wait_until(lambda: port is not None and find_free_port(port) == port, 10)
    info = await asyncio.to_thread(restartable.up)
    assert info.broker.outcome is Outcome.RESTARTED
    assert not info.broker_data_lost
    assert info.broker.port == before.broker.port
    partitions, next_values, group_known = await _what_survived(info.kafka_bootstrap, topic, group)
    assert (partitions, next_values, group_known) == (3, ["r6", "r7", "r8", "r9"], True)
