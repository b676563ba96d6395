"""One broker daemon of a state dir: its record file, and how it is told apart from strangers.

The record (``<state dir>/<name>.pid``, a :class:`ProcessRecord` as JSON) is written the moment
the process exists, before it serves anyone, and removed only once it is stopped. So a broker
that ``stack.json`` does not name (an ``up`` that failed or was interrupted after starting it,
a switch to the other broker, a restart) is still on record, and ``down`` stops every daemon on
record whatever ``stack.json`` says.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import psutil

from shared.stack.errors import StackError, log_tail
from shared.stack.process import process_owned, process_started_at, spawn_daemon, terminate
from shared.stack.state import ProcessRecord, read_record, remove_record, write_record

__all__ = ["Daemon"]


class Daemon:
    """The daemon called ``name`` in ``state_dir`` (``tansu``, ``kafka``), logging to ``log``."""

    def __init__(self, state_dir: Path, name: str, log: Path) -> None:
        self.record_file = state_dir / f"{name}.pid"
        self.log = log
        self._name = name
        # Resolved: `down` may reach the state dir by another path (the pointer) than `up`.
        self._owner = f"{name} {state_dir.resolve()}"

    def spawn(self, argv: Sequence[str], port: int) -> ProcessRecord:
        """Start ``argv`` as a daemon that will listen on ``port``, and put it on record."""
        pid = spawn_daemon(argv, self.log, owner=self._owner)
        started_at = process_started_at(pid)
        if started_at is None:
            raise StackError(f"{self._name} exited right after starting:\n{log_tail(self.log)}")
        record = ProcessRecord(pid=pid, port=port, started_at=started_at)
        write_record(self.record_file, record)
        return record

    def recorded(self) -> ProcessRecord | None:
        """The daemon on record, running or not; ``None`` when there is none."""
        return read_record(self.record_file)

    def alive(self, record: ProcessRecord) -> bool:
        """Whether ``record``'s process still runs, as this daemon (never a reused pid)."""
        return process_owned(record.pid, record.started_at, self._owner)

    def stop(self, record: ProcessRecord, timeout: float) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; a no-op when it is already gone.
        Takes it off record once it is gone."""
        if self.alive(record):
            # It may exit between the check and the signal.
            with contextlib.suppress(psutil.Error):
                terminate([psutil.Process(record.pid)], timeout=timeout)
        current = self.recorded()
        if current is not None and (current == record or not self.alive(current)):
            remove_record(self.record_file)
