"""The service registry: every running service has a file in ``<state dir>/services/``.

``agentlog stack down`` reads it to stop a stack's services before the stack itself, so none is
left behind reconnecting to a broker that is gone; ``agentlog stack status`` shows each one's
pid, uptime and health. A record is ``<service>-<pid>.json``, rewritten every
:data:`REFRESH_S` seconds with the service's health and removed when the service exits cleanly.
A record whose process is gone, or whose pid now belongs to another program, is stale.

A service registers only in the state dir of the stack it actually uses (its connection settings
match that stack's ``stack.json``): a service pointed elsewhere by the environment, such as a
test's, must never be stopped by ``down`` of an unrelated stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

from shared.settings import Settings

__all__ = [
    "REFRESH_S",
    "SERVICES_DIR_NAME",
    "STALE_AFTER_S",
    "Registration",
    "ServiceRecord",
    "StoppedService",
    "list_services",
    "live_process",
    "registered",
    "registry_dir",
    "stop_services",
]

SERVICES_DIR_NAME = "services"
REFRESH_S = 2.0
# A heartbeat older than this means the service's event loop is blocked or the process hangs.
STALE_AFTER_S = 5 * REFRESH_S

Health = Callable[[], Mapping[str, object]]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceRecord:
    """What a service wrote about itself."""

    pid: int
    service: str
    started_at: float  # the process's create time: tells it apart from a later reuse of the pid
    host: str
    cmdline: tuple[str, ...]
    log: str | None
    state: str  # "starting" until the service is subscribed, then "ready"
    health: Mapping[str, object]
    updated_at: float
    path: Path = field(compare=False)
    #: Where the service serves its Prometheus metrics (``http://host:port/metrics``), if it does.
    metrics: str | None = None
    #: Seconds from the machine's boot to the process's start (``since_boot``): what tells the
    #: process apart from a later reuse of its pid when the wall clock has been stepped since.
    since_boot_s: float | None = None

    @property
    def uptime_s(self) -> float:
        """Seconds since the process started."""
        return max(0.0, time.time() - self.started_at)

    @property
    def heartbeat_age_s(self) -> float:
        """Seconds since the service last refreshed its record."""
        return max(0.0, time.time() - self.updated_at)

    def to_json(self) -> dict[str, Any]:
        """The file's content."""
        return {
            "pid": self.pid,
            "service": self.service,
            "started_at": self.started_at,
            "host": self.host,
            "cmdline": list(self.cmdline),
            "log": self.log,
            "state": self.state,
            "health": dict(self.health),
            "updated_at": self.updated_at,
            "metrics": self.metrics,
            "since_boot_s": self.since_boot_s,
        }

    @classmethod
    def from_json(cls, raw: Any, path: Path) -> ServiceRecord:
        """Parse :meth:`to_json` output; raises ``ValueError`` on anything else."""
        if not isinstance(raw, dict):
            raise ValueError("a service record must be an object")
        pid, service, started_at = raw.get("pid"), raw.get("service"), raw.get("started_at")
        cmdline, health, updated_at = raw.get("cmdline"), raw.get("health"), raw.get("updated_at")
        if not (isinstance(pid, int) and isinstance(service, str)):
            raise ValueError("a service record needs an integer pid and a service name")
        if not (isinstance(started_at, int | float) and isinstance(updated_at, int | float)):
            raise ValueError("a service record needs numeric started_at and updated_at")
        if not (isinstance(cmdline, list) and all(isinstance(a, str) for a in cmdline)):
            raise ValueError("a service record needs its command line")
        log, metrics, since_boot = raw.get("log"), raw.get("metrics"), raw.get("since_boot_s")
        return cls(
            pid=pid,
            service=service,
            started_at=float(started_at),
            host=str(raw.get("host", "")),
            cmdline=tuple(cmdline),
            log=log if isinstance(log, str) else None,
            state=str(raw.get("state", "starting")),
            health=health if isinstance(health, dict) else {},
            updated_at=float(updated_at),
            path=path,
            metrics=metrics if isinstance(metrics, str) else None,
            since_boot_s=float(since_boot) if isinstance(since_boot, int | float) else None,
        )


@dataclass(frozen=True)
class StoppedService:
    """A service ``stop_services`` stopped, and whether it needed SIGKILL."""

    record: ServiceRecord
    killed: bool


def registry_dir(settings: Settings) -> Path | None:
    """The folder this process registers in: the ``services/`` folder of the stack whose
    ``stack.json`` names the same backends as ``settings``; ``None`` when there is none."""
    try:
        recorded = json.loads((settings.state_dir / "stack.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict):
        return None
    for key, ours in (
        ("database_url", settings.database_url),
        ("kafka_bootstrap", settings.kafka_bootstrap),
    ):
        if ours is not None and recorded.get(key) != ours:
            return None
    return settings.state_dir / SERVICES_DIR_NAME


class Registration:
    """A registered service's handle: :meth:`ready` marks it subscribed and serving."""

    def __init__(self, path: Path | None, record: ServiceRecord | None, health: Health | None):
        self.path = path
        self._record = record
        self._health = health

    def ready(self) -> None:
        """Record that the service is serving (``agentlog up`` waits for this)."""
        if self._record is not None:
            self._record = replace(self._record, state="ready")
            self._write()

    def _write(self) -> None:
        if self.path is None or self._record is None:
            return
        health: Mapping[str, object] = {}
        if self._health is not None:
            try:
                health = dict(self._health())
            except Exception as exc:  # a broken probe must not take the service down
                health = {"error": f"health probe failed: {exc}"}
        self._record = replace(self._record, health=health, updated_at=time.time())
        try:
            _write_json(self.path, self._record.to_json())
        except OSError as exc:
            _log.warning("cannot update the service record %s: %s", self.path, exc)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            self._write()


@contextlib.asynccontextmanager
async def registered(
    settings: Settings,
    service: str,
    health: Health | None = None,
    *,
    metrics: str | None = None,
) -> AsyncIterator[Registration]:
    """Register this process for as long as the block runs; the record goes on a clean exit.

    ``metrics`` is the address of the service's Prometheus endpoint, shown by ``stack status``.
    """
    folder = registry_dir(settings)
    if folder is None:
        yield Registration(None, None, None)
        return
    me = psutil.Process()
    record = ServiceRecord(
        pid=me.pid,
        service=service,
        started_at=me.create_time(),
        host=socket.gethostname(),
        cmdline=tuple(me.cmdline()),
        log=_own_log_file(),
        state="starting",
        health={},
        updated_at=time.time(),
        path=folder / f"{service}-{me.pid}.json",
        metrics=metrics,
        since_boot_s=since_boot(me),
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(record.path, record.to_json())
    except OSError as exc:
        _log.warning(
            "not registered in %s (stack down will not stop this process): %s", folder, exc
        )
        yield Registration(None, None, None)
        return
    registration = Registration(record.path, record, health)
    refresher = asyncio.create_task(registration._refresh(), name=f"registry-{service}")
    try:
        yield registration
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        record.path.unlink(missing_ok=True)


def list_services(state_dir: Path) -> list[ServiceRecord]:
    """The records in ``state_dir``, by service name then pid; unreadable files are skipped."""
    folder = state_dir / SERVICES_DIR_NAME
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            records.append(ServiceRecord.from_json(json.loads(path.read_text()), path))
        except (OSError, ValueError):
            continue
    return sorted(records, key=lambda r: (r.service, r.pid))


def since_boot(proc: psutil.Process) -> float:
    """Seconds from the machine's boot to ``proc``'s start.

    psutil's create time is the kernel's boot time plus the ticks since boot, and the kernel
    derives the boot time from the wall clock, so a clock step (NTP, a VM resumed from a
    snapshot) moves every process's create time: a live service would look like a reused pid
    and ``stack down`` would leave it running. The difference does not move.
    """
    return proc.create_time() - psutil.boot_time()


def live_process(record: ServiceRecord) -> psutil.Process | None:
    """The record's process if it still runs here as that same program, else ``None``."""
    if record.host and record.host != socket.gethostname():
        return None
    try:
        proc = psutil.Process(record.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if record.since_boot_s is not None:
            if abs(since_boot(proc) - record.since_boot_s) >= 1.0:
                return None
        elif abs(proc.create_time() - record.started_at) >= 1.0:
            return None  # a record written before since_boot_s
        if tuple(proc.cmdline()) != record.cmdline:
            return None
    except psutil.Error:
        return None
    return proc


def stop_services(state_dir: Path, timeout_s: float = 10.0) -> list[StoppedService]:
    """SIGTERM every registered service, SIGKILL those still running after ``timeout_s``;
    remove their records and the stale ones. Returns what it stopped."""
    targets: list[tuple[ServiceRecord, psutil.Process]] = []
    for record in list_services(state_dir):
        if record.host and record.host != socket.gethostname():
            continue  # another machine's process: nothing to verify or signal from here
        proc = live_process(record)
        if proc is None:
            record.path.unlink(missing_ok=True)
        else:
            targets.append((record, proc))
    for _, proc in targets:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _wait_gone([p for _, p in targets], timeout_s)
    stopped = []
    for record, proc in targets:
        killed = not _gone(proc)
        if killed:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        stopped.append(StoppedService(record, killed))
    _wait_gone([p for _, p in targets], 5.0)
    for record, _ in targets:
        record.path.unlink(missing_ok=True)
    return stopped


def _gone(proc: psutil.Process) -> bool:
    # A zombie has exited; whoever started it (a shell, or init) reaps it later.
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _wait_gone(procs: list[psutil.Process], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(_gone(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.05)


def _own_log_file() -> str | None:
    """Where this process's stderr goes, when that is a plain file (Linux only)."""
    try:
        if stat.S_ISREG(os.fstat(2).st_mode):
            return os.readlink("/proc/self/fd/2")
    except OSError:
        pass
    return None


def _write_json(path: Path, content: dict[str, Any]) -> None:
    # Atomic, so `stack status` never reads half a record.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(content, indent=2, default=str) + "\n")
    tmp.replace(path)
