"""Start the services as separate OS processes (the demo and end-to-end tests use it).

A service may run as several replicas: processes named ``writer#1``, ``writer#2``, … run the
same ``python -m services.writer`` and share its consumer groups, so the broker splits the
partitions between them (see :func:`replica_names`). A plain ``writer`` is one process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = ["SERVICES", "ServiceProcesses", "replica_names", "service_of"]

SERVICES = ("supervisor", "search", "writer", "critic", "summarizer")
#: Separates a service from its replica number in a process name (``writer#2``).
REPLICA_MARK = "#"


def replica_names(replicas: Mapping[str, int]) -> tuple[str, ...]:
    """Process names for ``replicas`` (service → count): ``writer#1`` … ``writer#N`` for a
    service with several, the bare service name for a service with one."""
    names: list[str] = []
    for service, count in replicas.items():
        if count < 1:
            raise ValueError(f"{service}: at least one replica, not {count}")
        if count == 1:
            names.append(service)
        else:
            names.extend(f"{service}{REPLICA_MARK}{i}" for i in range(1, count + 1))
    return tuple(names)


def service_of(name: str) -> str:
    """The service a process name runs (``writer#2`` → ``writer``)."""
    return name.partition(REPLICA_MARK)[0]


class ServiceProcesses:
    """Each named process runs ``python -m services.<service>``; logs go to
    ``log_dir/<name>.log``. ``services`` may name replicas (see :func:`replica_names`)."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_dir: Path,
        services: tuple[str, ...] = SERVICES,
        cwd: Path | None = None,
    ) -> None:
        if len(set(services)) != len(services):
            raise ValueError(f"process names must be unique: {services}")
        self._env = {**os.environ, **env}
        self._log_dir = log_dir
        self._services = services
        self._cwd = cwd
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    @property
    def names(self) -> tuple[str, ...]:
        """Every process name, in start order."""
        return self._services

    def start(self) -> None:
        """Launch every service (returns at once; they join their groups in the background)."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        for name in self._services:
            self._launch(name)

    def _launch(self, name: str) -> None:
        log = (self._log_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service_of(name)}"],
            env=self._env,
            cwd=self._cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def dead(self) -> dict[str, int]:
        """Services that exited, with their exit codes."""
        return {
            name: code for name, proc in self.processes.items() if (code := proc.poll()) is not None
        }

    def kill(self, name: str) -> None:
        """SIGKILL one service (chaos)."""
        self.processes[name].kill()
        self.processes[name].wait()

    def restart(self, name: str) -> None:
        """Start a stopped service again with the same settings."""
        self._launch(name)

    def stop(self, timeout_s: float = 10.0) -> dict[str, int]:
        """SIGTERM all, wait, SIGKILL stragglers; returns exit codes."""
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        codes: dict[str, int] = {}
        for name, proc in self.processes.items():
            try:
                codes[name] = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait()
        for log in self._logs:
            log.close()
        self._logs.clear()
        return codes

    def log_tail(self, name: str, lines: int = 30) -> str:
        """The end of a service's log, for error reports."""
        path = self._log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
