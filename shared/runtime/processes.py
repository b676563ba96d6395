"""Start the five services as separate OS processes (the demo and end-to-end tests use it)."""

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

__all__ = ["SERVICES", "ServiceProcesses"]

SERVICES = ("supervisor", "search", "writer", "critic", "summarizer")


class ServiceProcesses:
    """Each service runs as ``python -m services.<name>``; logs go to ``log_dir/<name>.log``."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_dir: Path,
        services: tuple[str, ...] = SERVICES,
        cwd: Path | None = None,
    ) -> None:
        self._env = {**os.environ, **env}
        self._log_dir = log_dir
        self._services = services
        self._cwd = cwd
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    def start(self) -> None:
        """Launch every service (returns at once; they join their groups in the background)."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        for name in self._services:
            log = (self._log_dir / f"{name}.log").open("ab")
            self._logs.append(log)
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
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
        log = (self._log_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            env=self._env,
            cwd=self._cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

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
