"""The stack's state file, ``<state dir>/stack.json``: where each component runs; and each
broker daemon's own record (``<state dir>/<broker>.pid``, see :mod:`shared.stack.daemon`).

``shared.settings`` reads ``database_url`` and ``kafka_bootstrap`` from this file as a fallback
when the environment names no backend, so those two top-level keys are a public contract.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = [
    "STATE_FILE_NAME",
    "BrokerKind",
    "ProcessRecord",
    "StackState",
    "database_url",
    "kafka_bootstrap",
    "read_record",
    "read_state",
    "remove_record",
    "remove_state",
    "write_record",
    "write_state",
]

STATE_FILE_NAME = "stack.json"
LOOPBACK = "127.0.0.1"


class BrokerKind(StrEnum):
    """Which Kafka-protocol broker the stack runs."""

    TANSU = "tansu"  # in memory, starts in milliseconds; the default
    KAFKA = "kafka"  # Apache Kafka on the JVM; keeps its data across restarts


def database_url(port: int, database: str) -> str:
    """The DSN of the embedded Postgres (trust auth on loopback, so no password)."""
    return f"postgresql://postgres@{LOOPBACK}:{port}/{database}"


def kafka_bootstrap(port: int) -> str:
    """The bootstrap servers of the embedded broker."""
    return f"{LOOPBACK}:{port}"


@dataclass(frozen=True)
class ProcessRecord:
    """A daemon we started: its pid, its port, and its start time.

    The start time (psutil's ``create_time``) tells our process apart from an unrelated one
    that reused the pid after a crash or a reboot, so we never signal a stranger.
    """

    pid: int
    port: int
    started_at: float

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"pid": self.pid, "port": self.port, "started_at": self.started_at}

    @classmethod
    def from_json(cls, raw: Any) -> ProcessRecord:
        """Parse :meth:`to_json` output; raises ``ValueError`` on anything else."""
        if not isinstance(raw, dict):
            raise ValueError(f"process record must be an object, got {raw!r}")
        pid, port, started_at = raw.get("pid"), raw.get("port"), raw.get("started_at")
        if not (isinstance(pid, int) and isinstance(port, int)):
            raise ValueError(f"process record needs integer pid and port: {raw!r}")
        if not isinstance(started_at, int | float) or isinstance(started_at, bool):
            raise ValueError(f"process record needs a numeric started_at: {raw!r}")
        return cls(pid=pid, port=port, started_at=float(started_at))


@dataclass(frozen=True)
class StackState:
    """What ``stack up`` last started."""

    postgres: ProcessRecord
    broker: ProcessRecord
    database: str = "agentlog"
    broker_kind: BrokerKind = BrokerKind.TANSU

    @property
    def database_url(self) -> str:
        """DSN of the recorded Postgres."""
        return database_url(self.postgres.port, self.database)

    @property
    def kafka_bootstrap(self) -> str:
        """Bootstrap servers of the recorded broker."""
        return kafka_bootstrap(self.broker.port)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, including the two keys ``shared.settings`` reads."""
        return {
            "database_url": self.database_url,
            "kafka_bootstrap": self.kafka_bootstrap,
            "database": self.database,
            "postgres": self.postgres.to_json(),
            "broker": self.broker.to_json(),
            "broker_kind": str(self.broker_kind),
        }

    @classmethod
    def from_json(cls, raw: Any) -> StackState:
        """Parse :meth:`to_json` output; raises ``ValueError`` on anything else."""
        if not isinstance(raw, dict):
            raise ValueError(f"stack state must be an object, got {raw!r}")
        database = raw.get("database", "agentlog")
        if not isinstance(database, str):
            raise ValueError(f"database must be a string: {database!r}")
        # Files written before there was a choice have no broker_kind: they ran Tansu.
        kind = raw.get("broker_kind", BrokerKind.TANSU)
        if not isinstance(kind, str) or kind not in list(BrokerKind):
            raise ValueError(f"broker_kind must be one of {', '.join(BrokerKind)}: {kind!r}")
        return cls(
            postgres=ProcessRecord.from_json(raw.get("postgres")),
            broker=ProcessRecord.from_json(raw.get("broker")),
            database=database,
            broker_kind=BrokerKind(kind),
        )


def read_state(state_file: Path) -> StackState | None:
    """The recorded state, or ``None`` when the file is missing or unreadable."""
    try:
        return StackState.from_json(json.loads(state_file.read_text()))
    except (OSError, ValueError):
        return None


def write_state(state_file: Path, state: StackState) -> None:
    """Replace the state file atomically, so a reader never sees half a file."""
    _write_json(state_file, state.to_json())


def remove_state(state_file: Path) -> None:
    """Forget the stack, so settings stop pointing at stopped servers."""
    state_file.unlink(missing_ok=True)


def read_record(record_file: Path) -> ProcessRecord | None:
    """A daemon's own record, or ``None`` when the file is missing or unreadable."""
    try:
        return ProcessRecord.from_json(json.loads(record_file.read_text()))
    except (OSError, ValueError):
        return None


def write_record(record_file: Path, record: ProcessRecord) -> None:
    """Replace a daemon's own record atomically."""
    _write_json(record_file, record.to_json())


def remove_record(record_file: Path) -> None:
    """Take a stopped daemon off record."""
    record_file.unlink(missing_ok=True)


def _write_json(path: Path, raw: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(raw, indent=2) + "\n")
    tmp.replace(path)
