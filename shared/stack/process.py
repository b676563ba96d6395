"""Process and port helpers shared by the Postgres and broker adapters."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

from shared.stack.errors import StackError

__all__ = [
    "find_free_port",
    "port_accepting",
    "process_alive",
    "process_owned",
    "process_started_at",
    "spawn_daemon",
    "terminate",
    "wait_until",
]

# `exec` in a background subshell: the daemon is orphaned as soon as sh exits, so it outlives
# the caller (the CLI or a test run) and is never left as the caller's zombie.
_DAEMONIZE = 'log=$1; shift; exec "$@" </dev/null >>"$log" 2>&1 & echo $!'


# The environment variable that names a daemon's owner (see `process_owned`).
_OWNER_VARIABLE = "AGENTLOG_STACK_DAEMON"


def spawn_daemon(argv: Sequence[str], log: Path, owner: str) -> int:
    """Start ``argv`` detached in its own session, appending its output to ``log``, with
    ``owner`` in its environment (for :func:`process_owned`); its pid."""
    try:
        out = subprocess.run(
            ["/bin/sh", "-c", _DAEMONIZE, "sh", str(log), *argv],
            check=True,
            env={**os.environ, _OWNER_VARIABLE: owner},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            start_new_session=True,
            text=True,
            timeout=10,
        ).stdout
        return int(out.strip())
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise StackError(f"could not start {argv[0]}: {exc}") from exc


def process_started_at(pid: int) -> float | None:
    """The start time of a live process, or ``None`` if it is gone (or a zombie)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except psutil.Error:
        return None


def process_alive(pid: int, started_at: float) -> bool:
    """Whether the process we recorded is still running (not merely a reused pid)."""
    now = process_started_at(pid)
    return now is not None and abs(now - started_at) < 1.0


def process_owned(pid: int, started_at: float, owner: str) -> bool:
    """Whether ``pid`` is still the daemon :func:`spawn_daemon` started for ``owner``.

    A start time alone can call a live daemon dead: psutil's start time is the kernel's boot
    time plus the ticks since boot, and the boot time moves with every step of the wall clock
    (NTP, a VM resumed from a snapshot); even a step of a fraction of a second can move it by
    one whole second. The owner in the process's environment survives that, and no process
    but one we started for this owner carries it. The start time still serves for a process
    whose environment cannot be read, or one started before the owner was written there.
    """
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if proc.environ().get(_OWNER_VARIABLE) == owner:
            return True
    except psutil.AccessDenied:
        pass
    except psutil.Error:
        return False
    return process_alive(pid, started_at)


def _gone(proc: psutil.Process) -> bool:
    # A zombie has exited; its parent (often init, after we were orphaned) reaps it later.
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _signal_all(procs: Sequence[psutil.Process], kill: bool) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if kill:
                proc.kill()
            else:
                proc.terminate()


def terminate(procs: Sequence[psutil.Process], timeout: float = 5.0) -> None:
    """SIGTERM the processes, then SIGKILL whatever is left after ``timeout`` seconds."""
    _signal_all(procs, kill=False)
    if wait_until(lambda: all(_gone(p) for p in procs), timeout):
        return
    _signal_all([p for p in procs if not _gone(p)], kill=True)
    if not wait_until(lambda: all(_gone(p) for p in procs), timeout):
        left = [p.pid for p in procs if not _gone(p)]
        raise StackError(f"processes survived SIGKILL: {left}")


def port_accepting(port: int, host: str = "127.0.0.1", timeout: float = 0.25) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _can_bind(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers bind with SO_REUSEADDR too, so a port in TIME_WAIT is still usable.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def find_free_port(preferred: int | None = None, host: str = "127.0.0.1") -> int:
    """``preferred`` if it is free (clients keep their address across restarts), else any."""
    if preferred is not None and _can_bind(preferred, host):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
