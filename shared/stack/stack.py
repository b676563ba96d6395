"""``EmbeddedStack``: one embedded Postgres and one broker per state dir, as daemons.

The broker is Tansu (in memory, the default) or Apache Kafka (on disk, needs Java): the one
asked for, else the one ``stack.json`` records as running, else Tansu.

The daemons outlive the process that starts them (``agentlog stack up`` returns at once);
``stack.json`` in the state dir records where they listen, for ``status``, ``down`` and
``shared.settings``. ``up`` is idempotent and repairs: a healthy component is left alone, a dead
one is started again (on its old port when that is free, so clients reconnect).

``stack.json`` is written last, so it is not what ``down`` relies on to find the processes:
Postgres is found by its ``postmaster.pid``, and each broker by its own record
(:mod:`shared.stack.daemon`), written the moment it starts.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from shared.auth import ensure_development_keys
from shared.runtime.registry import StoppedService, stop_services
from shared.stack.broker import EmbeddedBroker
from shared.stack.errors import StackError
from shared.stack.kafka import EmbeddedKafka
from shared.stack.postgres import EmbeddedPostgres
from shared.stack.process import find_free_port, wait_until
from shared.stack.state import (
    STATE_FILE_NAME,
    BrokerKind,
    ProcessRecord,
    StackState,
    database_url,
    kafka_bootstrap,
    read_state,
    remove_state,
    write_state,
)
from shared.stack.topics import create_topics

__all__ = [
    "ComponentInfo",
    "ComponentStatus",
    "EmbeddedStack",
    "Outcome",
    "StackInfo",
    "StackStatus",
]

# A live process that does not answer within these is hung, and gets restarted.
_POSTGRES_READY_TIMEOUT_S = 10.0
_BROKER_READY_TIMEOUT_S = 2.0


class _Broker(Protocol):
    """What the stack needs of a broker daemon (Tansu's and Kafka's adapters)."""

    @property
    def name(self) -> str:
        """What runs, for people."""
        ...

    def prepare(self) -> None:
        """Check (and fetch) what it needs to start, before anything is started."""
        ...

    def start(self, port: int) -> ProcessRecord:
        """Start on ``port``; returns once it serves clients."""
        ...

    def recorded(self) -> ProcessRecord | None:
        """Its own record in the state dir, running or not."""
        ...

    def alive(self, record: ProcessRecord) -> bool:
        """Whether the recorded process still runs (not merely a reused pid)."""
        ...

    def is_ready(self, record: ProcessRecord) -> bool:
        """Whether the recorded process is alive and serving."""
        ...

    def stop(self, record: ProcessRecord) -> None:
        """Stop the recorded process, if it still runs."""
        ...


class Outcome(StrEnum):
    """What ``up`` did to a component."""

    ALREADY_RUNNING = "already running"
    STARTED = "started"
    RESTARTED = "restarted"  # it was recorded as running, but had died


@dataclass(frozen=True)
class ComponentInfo:
    """Where a component runs after ``up``, and what ``up`` did to it."""

    pid: int
    port: int
    outcome: Outcome


@dataclass(frozen=True)
class StackInfo:
    """The result of ``up``: the connection settings and each component."""

    database_url: str
    kafka_bootstrap: str
    postgres: ComponentInfo
    broker: ComponentInfo
    broker_kind: BrokerKind = BrokerKind.TANSU

    @property
    def broker_data_lost(self) -> bool:
        """True when a recorded Tansu had died: its in-memory topics and offsets are gone
        (Kafka keeps them on disk)."""
        return self.broker.outcome is Outcome.RESTARTED and self.broker_kind is BrokerKind.TANSU


@dataclass(frozen=True)
class ComponentStatus:
    """Health of one component: its pid is alive and its port answers."""

    healthy: bool
    pid: int | None
    port: int | None
    detail: str


@dataclass(frozen=True)
class StackStatus:
    """Health of the whole stack, and its connection settings when known."""

    postgres: ComponentStatus
    broker: ComponentStatus
    database_url: str | None
    kafka_bootstrap: str | None
    broker_kind: BrokerKind | None = None

    @property
    def running(self) -> bool:
        """Both components are healthy."""
        return self.postgres.healthy and self.broker.healthy

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``agentlog stack status --json``)."""
        return {"running": self.running, **asdict(self)}


class EmbeddedStack:
    """Start, inspect and stop the embedded stack whose data lives in ``state_dir``."""

    def __init__(
        self,
        state_dir: Path,
        *,
        database: str = "agentlog",
        broker_binary: str | None = None,
        broker: BrokerKind | str | None = None,
    ) -> None:
        """``broker``: the broker ``up`` starts; ``None`` keeps the running one (else Tansu)."""
        self.state_dir = Path(state_dir).absolute()
        self._state_file = self.state_dir / STATE_FILE_NAME
        self._database = database
        self._postgres = EmbeddedPostgres(self.state_dir, database)
        self._requested = BrokerKind(broker) if broker is not None else None
        self._brokers: dict[BrokerKind, _Broker] = {
            BrokerKind.TANSU: EmbeddedBroker(self.state_dir, broker_binary),
            BrokerKind.KAFKA: EmbeddedKafka(self.state_dir),
        }

    def up(self) -> StackInfo:
        """Make both components healthy, starting or restarting what is not; idempotent."""
        self._make_state_dir()
        with self._locked():
            # Development signing keys for every service, the CLI and an upstream system
            # (kept across restarts: running services hold them).
            ensure_development_keys(self.state_dir / "keys")
            previous = read_state(self._state_file)
            kind = self._broker_kind(previous)
            self._brokers[kind].prepare()
            postgres, pg_outcome = self._ensure_postgres(previous)
            broker, broker_outcome = self._ensure_broker(previous, kind)
            state = StackState(
                postgres=postgres, broker=broker, database=self._database, broker_kind=kind
            )
            write_state(self._state_file, state)
        return StackInfo(
            database_url=state.database_url,
            kafka_bootstrap=state.kafka_bootstrap,
            postgres=ComponentInfo(postgres.pid, postgres.port, pg_outcome),
            broker=ComponentInfo(broker.pid, broker.port, broker_outcome),
            broker_kind=kind,
        )

    def status(self) -> StackStatus:
        """Health of both components; starts and stops nothing."""
        state = read_state(self._state_file) if self.state_dir.is_dir() else None
        postgres = self._postgres.running() if self.state_dir.is_dir() else None
        if postgres is None:
            pg_status = ComponentStatus(False, None, None, "not running")
        elif self._postgres.is_ready(postgres.port):
            pg_status = ComponentStatus(True, postgres.pid, postgres.port, "accepting connections")
        else:
            pg_status = ComponentStatus(False, postgres.pid, postgres.port, "not accepting")
        broker_status = (
            _broker_status(self._brokers[state.broker_kind], state.broker)
            if state
            else ComponentStatus(False, None, None, "not running")
        )
        return StackStatus(
            postgres=pg_status,
            broker=broker_status,
            database_url=database_url(postgres.port, self._database) if postgres else None,
            kafka_bootstrap=kafka_bootstrap(state.broker.port) if state else None,
            broker_kind=state.broker_kind if state else None,
        )

    def down(self) -> list[StoppedService]:
        """Stop the registered services, then both components, and forget them; leaves no
        process behind. Idempotent. Returns the services it stopped."""
        if not self.state_dir.is_dir():
            return []
        with self._locked():
            # Services first: stopped after the stack, they would reconnect in a loop forever.
            stopped = stop_services(self.state_dir)
            state = read_state(self._state_file)
            # Every broker on record, whatever stack.json names (or whether there is one): an
            # `up` that failed after starting one wrote none, a switch or a restart another.
            for kind, broker in self._brokers.items():
                for record in self._records(kind, state):
                    broker.stop(record)
            self._postgres.stop()
            remove_state(self._state_file)
        return stopped

    def _ensure_postgres(self, previous: StackState | None) -> tuple[ProcessRecord, Outcome]:
        running = self._postgres.running()
        if running is not None:
            port = running.port
            if wait_until(lambda: self._postgres.is_ready(port), _POSTGRES_READY_TIMEOUT_S):
                return running, Outcome.ALREADY_RUNNING
            self._postgres.stop()
        port = find_free_port(previous.postgres.port if previous else None)
        record = self._postgres.start(port)
        return record, Outcome.RESTARTED if previous else Outcome.STARTED

    def _records(self, kind: BrokerKind, state: StackState | None) -> list[ProcessRecord]:
        """The records of ``kind``'s broker: its own, and stack.json's (which may be the only
        one, written before brokers kept their own); the live one first."""
        broker = self._brokers[kind]
        named = state.broker if state is not None and state.broker_kind is kind else None
        records = [r for r in (broker.recorded(), named) if r is not None]
        return sorted(dict.fromkeys(records), key=lambda r: not broker.alive(r))

    def _broker_kind(self, previous: StackState | None) -> BrokerKind:
        running = [
            kind
            for kind, broker in self._brokers.items()
            if any(broker.alive(record) for record in self._records(kind, previous))
        ]
        if self._requested is None:
            if running:
                return running[0]
            return previous.broker_kind if previous else BrokerKind.TANSU
        # Switching under running services would strand them on a broker that is gone.
        for kind in running:
            if kind is not self._requested:
                raise StackError(
                    f"a {kind} broker is running in {self.state_dir}: stop the stack"
                    f" (`agentlog stack down`) before starting it with {self._requested}"
                )
        return self._requested

    def _ensure_broker(
        self, previous: StackState | None, kind: BrokerKind
    ) -> tuple[ProcessRecord, Outcome]:
        broker = self._brokers[kind]
        recorded = next(iter(self._records(kind, previous)), None)
        if recorded is not None and broker.alive(recorded):
            if wait_until(lambda: broker.is_ready(recorded), _BROKER_READY_TIMEOUT_S):
                if previous is None or previous.broker != recorded:
                    # Left by an `up` that failed before writing stack.json: perhaps before
                    # creating the topics too.
                    create_topics(kafka_bootstrap(recorded.port))
                return recorded, Outcome.ALREADY_RUNNING
            broker.stop(recorded)
        if recorded is not None:
            # Running services keep the old address: give a dying broker time to free it.
            wait_until(lambda: find_free_port(recorded.port) == recorded.port, 5.0, 0.1)
        record = broker.start(find_free_port(recorded.port if recorded else None))
        # At once, before a running service's client sends into a topic the broker lacks.
        create_topics(kafka_bootstrap(record.port))
        return record, Outcome.RESTARTED if recorded else Outcome.STARTED

    def _make_state_dir(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        ignore = self.state_dir / ".gitignore"
        if not ignore.exists():
            # Keeps databases and logs out of git wherever the stack is started.
            ignore.write_text("*\n")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Two concurrent `up`s would otherwise both start a broker and one would leak.
        with (self.state_dir / "stack.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _broker_status(broker: _Broker, record: ProcessRecord) -> ComponentStatus:
    if not broker.alive(record):
        return ComponentStatus(False, record.pid, record.port, "not running (process gone)")
    if not broker.is_ready(record):
        return ComponentStatus(False, record.pid, record.port, f"{broker.name}, not accepting")
    return ComponentStatus(True, record.pid, record.port, f"{broker.name}, accepting connections")
