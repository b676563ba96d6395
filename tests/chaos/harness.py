"""The chaos suite's tools: a fleet of service processes to hurt, goals in, and patient waits.

Every wait polls real state (the event store, service logs, topics) until a condition holds or
a generous deadline passes; the deadline only turns a hang into a readable failure.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.auth import Signer, ensure_development_keys
from shared.auth.keys import load_private_key
from shared.domain import TERMINAL_EVENTS
from shared.eventstore import RecordedEvent
from shared.eventstore.postgres import PostgresEventStore
from shared.runtime.processes import SERVICES, ServiceProcesses, service_of
from shared.stack import EmbeddedStack
from tests.e2e.corpus import write_corpus
from tests.e2e.upstream import publish_goal

__all__ = [
    "COMPLETIONS",
    "MAX_ATTEMPTS",
    "RELAY_CHECKPOINT",
    "RESULTS",
    "SERVICE_DB_APP",
    "TASK_TIMEOUT_S",
    "WORKFLOW_EVENTS",
    "Fleet",
    "ce_id_of",
    "eventually",
    "is_task_for",
    "own_stack_env",
    "publish_goal",
    "read_topic",
    "signer",
    "tagged_dsn",
    "wait_consumed",
    "wait_for_event",
    "wait_relayed",
    "wait_terminal",
]

RESULTS = "agentlog.results"
COMPLETIONS, WORKFLOW_EVENTS = "agentlog.completions", "agentlog.workflow-events"
# The outbox relay's checkpoint name (services/supervisor/relay.py, OutboxRelay.CHECKPOINT).
RELAY_CHECKPOINT = "relay.supervisor"
WAIT_S = 90.0
#: The ``application_name`` of every service's database connections, so a test can drop
#: exactly those (and not its own, nor another session's on a shared server).
SERVICE_DB_APP = f"agentlog-chaos-{os.getpid()}"

#: Short deadlines so a lost task is retried within seconds; enough attempts to outlast a
#: restart (group rejoin after a SIGKILL waits ~ the 2 s session timeout).
TASK_TIMEOUT_S = 4
MAX_ATTEMPTS = 6

T = TypeVar("T")


class Fleet:
    """The services as processes, with the faults a chaos test injects.

    ``names`` are process names: the five services by default, or replicas such as
    ``writer#2`` (``shared.runtime.processes.replica_names``); every method takes those names.
    """

    def __init__(
        self, env: dict[str, str], log_dir: Path, cwd: Path, names: tuple[str, ...] = SERVICES
    ) -> None:
        self.log_dir = log_dir
        self.names = names
        self.processes = ServiceProcesses(env, log_dir, names, cwd=cwd)
        #: Services this test took down on purpose (until it restarts them).
        self.downed: set[str] = set()

    def start(self) -> None:
        """Launch every service."""
        self.processes.start()

    def kill(self, name: str) -> None:
        """SIGKILL a service: no drain, no commit, no LeaveGroup."""
        self.downed.add(name)
        self.processes.kill(name)

    def terminate(self, name: str) -> None:
        """Stop a service cleanly (SIGTERM) and wait for it to exit."""
        self.downed.add(name)
        proc = self.processes.processes[name]
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    def restart(self, name: str) -> None:
        """Start a stopped or killed service again."""
        self.processes.restart(name)
        self.downed.discard(name)

    def crashed(self) -> dict[str, int]:
        """Services that exited without the test asking, with their exit codes."""
        return {n: c for n, c in self.processes.dead().items() if n not in self.downed}

    def ready_count(self, name: str) -> int:
        """How many times the service has logged that it is consuming (once per start)."""
        return self.log_count(name, rf": {re.escape(service_of(name))} ready\b")

    def log_count(self, name: str, pattern: str) -> int:
        """How many lines of the process's log match the regular expression ``pattern``."""
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return 0
        marker = re.compile(pattern)
        return sum(
            1 for line in path.read_text(errors="replace").splitlines() if marker.search(line)
        )

    async def wait_ready(self, names: tuple[str, ...] | None = None, starts: int = 1) -> None:
        """Wait until each named service (default: all) has joined its groups ``starts`` times."""
        names = self.names if names is None else names

        async def all_ready() -> bool | None:
            return True if all(self.ready_count(n) >= starts for n in names) else None

        await eventually(all_ready, what=f"{', '.join(names)} ready (start #{starts})", fleet=self)

    def diagnostics(self) -> str:
        """Exit codes and log tails, for failure messages."""
        tails = "\n".join(
            f"--- {name}.log\n{self.processes.log_tail(name, 15)}" for name in self.names
        )
        return f"dead: {self.processes.dead()}\n{tails}"

    def stop(self) -> dict[str, int]:
        """SIGTERM all; their exit codes."""
        return self.processes.stop()


def ce_id_of(record: ConsumerRecord) -> str:
    """A record's CloudEvents id (the ``ce_id`` header)."""
    ce_id: bytes = dict(record.headers)["ce_id"]
    return ce_id.decode()


def is_task_for(agent: str, attempt: int | None = None) -> Callable[[RecordedEvent], bool]:
    """Matches the scheduling of a task for ``agent`` (of one attempt, if given)."""

    def match(event: RecordedEvent) -> bool:
        return (
            event.type == "TaskScheduled"
            and event.data["agent"] == agent
            and (attempt is None or event.data["attempt"] == attempt)
        )

    return match


def tagged_dsn(dsn: str, application_name: str) -> str:
    """``dsn`` with an ``application_name`` (asyncpg passes unknown query keys to the server)."""
    return f"{dsn}{'&' if '?' in dsn else '?'}application_name={application_name}"


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    what: str,
    fleet: Fleet | None = None,
    timeout_s: float = WAIT_S,
    every_s: float = 0.05,
) -> T:
    """Poll ``check`` until it returns something other than None; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (found := await check()) is None:
        if fleet is not None and fleet.crashed():
            raise AssertionError(
                f"a service crashed while waiting for {what}\n{fleet.diagnostics()}"
            )
        if time.monotonic() > deadline:
            detail = fleet.diagnostics() if fleet is not None else ""
            raise AssertionError(f"gave up after {timeout_s:.0f} s waiting for {what}\n{detail}")
        await asyncio.sleep(every_s)
    return found


async def wait_for_event(
    store: PostgresEventStore,
    workflow_id: str,
    match: Callable[[RecordedEvent], bool],
    *,
    what: str,
    fleet: Fleet | None = None,
) -> RecordedEvent:
    """The first event of the workflow that ``match`` accepts, once it is recorded."""

    async def first() -> RecordedEvent | None:
        return next((e for e in await store.read(workflow_id) if match(e)), None)

    return await eventually(first, what=f"{what} in {workflow_id}", fleet=fleet)


def own_stack_env(
    stack: EmbeddedStack, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Service settings for a test's own stack: its backends, keys and state dir, the designed
    corpus, short deadlines. The test process signs with the same keys (exported here)."""
    status = stack.status()
    assert status.database_url is not None
    assert status.kafka_bootstrap is not None
    keys = stack.state_dir / "keys"
    ensure_development_keys(keys)
    monkeypatch.setenv("AGENTLOG_AUTH_KEYS_DIR", str(keys))
    return {
        "AGENTLOG_DATABASE_URL": status.database_url,
        "AGENTLOG_KAFKA_BOOTSTRAP": status.kafka_bootstrap,
        "AGENTLOG_AUTH_KEYS_DIR": str(keys),
        "AGENTLOG_STATE_DIR": str(stack.state_dir),
        "AGENTLOG_DOCS_DIR": str(write_corpus(corpus)),
        "AGENTLOG_TASK_TIMEOUT_S": str(TASK_TIMEOUT_S),
        "AGENTLOG_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    }


def signer(keys_dir: Path, principal: str) -> Signer:
    """Signs as ``principal`` with the session's development key: services refuse unsigned
    records, so a test that plays a service's part must sign as that service."""
    return Signer(principal, load_private_key(keys_dir / f"{principal}.key"))


async def wait_terminal(
    store: PostgresEventStore, workflow_id: str, fleet: Fleet | None = None
) -> list[RecordedEvent]:
    """The workflow's whole history once it has ended."""

    async def finished() -> list[RecordedEvent] | None:
        events = await store.read(workflow_id)
        return events if any(e.type in TERMINAL_EVENTS for e in events) else None

    return await eventually(finished, what=f"{workflow_id} to finish", fleet=fleet)


async def wait_relayed(store: PostgresEventStore, position: int, fleet: Fleet | None = None) -> int:
    """Wait until the outbox relay has published everything up to ``position``."""

    async def relayed() -> int | None:
        checkpoint = await store.load_checkpoint(RELAY_CHECKPOINT)
        return checkpoint if checkpoint >= position else None

    return await eventually(relayed, what=f"relay checkpoint >= {position}", fleet=fleet)


async def read_topic(bootstrap: str, topic: str, keys: set[str]) -> list[ConsumerRecord]:
    """Every record on ``topic`` keyed by one of ``keys``, read to each partition's highwater.

    A fresh consumer group reads from the start; ``highwater()`` (correct on Tansu, unlike
    ``end_offsets``) tells when every partition has been read to its end.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"chaos-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=2000,
        heartbeat_interval_ms=200,
        rebalance_timeout_ms=2000,
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    wanted = {key.encode() for key in keys}
    found: list[ConsumerRecord] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    found.extend(r for r in records if r.key in wanted)
                if await _at_end(consumer):
                    return found
    finally:
        await consumer.stop()


async def _at_end(consumer: AIOKafkaConsumer) -> bool:
    assignment = consumer.assignment()
    if not assignment:
        return False
    for tp in assignment:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True


async def wait_consumed(
    bootstrap: str, group: str, records: list[ConsumerRecord], fleet: Fleet | None = None
) -> None:
    """Wait until consumer ``group`` has committed past every one of ``records``.

    Services commit a record only after its effect is durable, so this is the moment a
    duplicate would have shown up in the store if it were going to.
    """
    needed: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        needed[tp] = max(needed.get(tp, 0), record.offset + 1)
    if not needed:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:

        async def committed() -> bool | None:
            # partitions= is required on Tansu: without it the request breaks the connection.
            offsets = await admin.list_consumer_group_offsets(group, partitions=list(needed))
            done = all(tp in offsets and offsets[tp].offset >= end for tp, end in needed.items())
            return True if done else None

        await eventually(committed, what=f"{group} to commit past {needed}", fleet=fleet)
    finally:
        await admin.close()
