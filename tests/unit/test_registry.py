"""The service registry: who registers where, and what `stack down` stops (real processes, no
stack: the records are files in a temp state dir)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from shared.cli.stack import describe_service
from shared.runtime.registry import (
    ServiceRecord,
    list_services,
    registered,
    registry_dir,
    stop_services,
)
from shared.settings import Settings
from tests.unit._clock import step_the_wall_clock

_DB = "postgresql://postgres@127.0.0.1:5544/agentlog"
_KAFKA = "127.0.0.1:9099"


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state dir whose stack.json names _DB and _KAFKA; no AGENTLOG_* variables."""
    for name in list(os.environ):
        if name.startswith("AGENTLOG_"):
            monkeypatch.delenv(name)
    path = tmp_path / ".agentlog"
    path.mkdir()
    (path / "stack.json").write_text(json.dumps({"database_url": _DB, "kafka_bootstrap": _KAFKA}))
    return path


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A child process standing in for a service."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def _record_for(proc: subprocess.Popen[bytes], state_dir: Path, **changes: object) -> Path:
    ps = psutil.Process(proc.pid)
    path = state_dir / "services" / f"writer-{proc.pid}.json"
    path.parent.mkdir(exist_ok=True)
    raw = {
        "pid": proc.pid,
        "service": "writer",
        "started_at": ps.create_time(),
        "host": "",
        "cmdline": ps.cmdline(),
        "log": None,
        "state": "ready",
        "health": {},
        "updated_at": ps.create_time(),
        **changes,
    }
    path.write_text(json.dumps(raw))
    return path


def test_a_service_registers_only_with_the_stack_it_uses(state_dir: Path) -> None:
    """Matching (or unset) connection settings register; a different broker does not."""
    assert registry_dir(Settings(state_dir=state_dir)) == state_dir / "services"
    same = Settings(state_dir=state_dir, database_url=_DB, kafka_bootstrap=_KAFKA)
    assert registry_dir(same) == state_dir / "services"
    other = Settings(state_dir=state_dir, kafka_bootstrap="127.0.0.1:1")
    assert registry_dir(other) is None
    assert registry_dir(Settings(state_dir=state_dir.parent / "none")) is None


async def test_registration_lives_as_long_as_the_block(state_dir: Path) -> None:
    """The record appears on entry, turns ready on request, carries health, goes on exit."""
    settings = Settings(state_dir=state_dir)
    async with registered(settings, "critic", lambda: {"stuck_partitions": {}}) as reg:
        (record,) = list_services(state_dir)
        assert (record.service, record.state) == ("critic", "starting")
        assert record.path == reg.path
        reg.ready()
        (record,) = list_services(state_dir)
        assert record.state == "ready"
        assert record.health == {"stuck_partitions": {}}
    assert list_services(state_dir) == []


async def test_unrelated_process_does_not_register(state_dir: Path) -> None:
    """A process using another broker writes no record (down of this stack must spare it)."""
    settings = Settings(state_dir=state_dir, kafka_bootstrap="127.0.0.1:1")
    async with registered(settings, "critic") as reg:
        assert reg.path is None
        reg.ready()
    assert not (state_dir / "services").exists()


def test_stop_terminates_registered_services_and_removes_records(
    state_dir: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """A live registered process gets SIGTERM, exits, and its record is removed."""
    path = _record_for(sleeper, state_dir)
    (stopped,) = stop_services(state_dir, timeout_s=5)
    assert stopped.record.pid == sleeper.pid
    assert not stopped.killed
    assert sleeper.wait(5) == -15
    assert not path.exists()


def test_stop_never_signals_a_process_that_reused_the_pid(
    state_dir: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """A record whose pid now runs another program (other command line) is stale: removed, and
    that process is left alone."""
    path = _record_for(sleeper, state_dir, cmdline=["python", "-m", "services.writer"])
    assert stop_services(state_dir, timeout_s=1) == []
    assert sleeper.poll() is None
    assert not path.exists()


def test_stop_finds_its_service_after_a_wall_clock_step(
    state_dir: Path, sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the wall clock is stepped by an hour, a registered service is still stopped."""
    ps = psutil.Process(sleeper.pid)
    path = _record_for(sleeper, state_dir, since_boot_s=ps.create_time() - psutil.boot_time())
    step_the_wall_clock(monkeypatch, 3600.0)
    (stopped,) = stop_services(state_dir, timeout_s=5)
    assert stopped.record.pid == sleeper.pid
    assert sleeper.wait(5) == -15
    assert not path.exists()


def test_a_reused_pid_is_told_apart_by_its_time_since_boot(
    state_dir: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """A record whose pid and command line match but whose start (since boot) does not is a
    reused pid: removed, and the process is left alone."""
    ps = psutil.Process(sleeper.pid)
    earlier = ps.create_time() - psutil.boot_time() - 60.0
    path = _record_for(sleeper, state_dir, since_boot_s=earlier)
    assert stop_services(state_dir, timeout_s=1) == []
    assert sleeper.poll() is None
    assert not path.exists()


def test_record_of_a_dead_process_is_removed(state_dir: Path) -> None:
    """A record left by a crashed service is cleaned up by stop_services."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    path = _record_for(proc, state_dir)
    proc.wait()
    assert stop_services(state_dir, timeout_s=1) == []
    assert not path.exists()


def test_unreadable_records_are_skipped(state_dir: Path) -> None:
    """A half-written or foreign file in services/ is ignored, not fatal."""
    (state_dir / "services").mkdir()
    (state_dir / "services" / "junk.json").write_text("{not json")
    assert list_services(state_dir) == []
    with pytest.raises(ValueError, match="pid"):
        ServiceRecord.from_json({"service": "x"}, state_dir / "x.json")


def test_status_shows_a_stuck_partition_with_its_reason(
    state_dir: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """`stack status` renders the bus's health: a stuck partition, how long, and why."""
    health = {
        "consumers": ["agentlog.search"],
        "stuck_partitions": {"agentlog.tasks.search-2": {"reason": "DLQ refuses", "for_s": 12.5}},
    }
    _record_for(sleeper, state_dir, health=health)
    (record,) = list_services(state_dir)
    head, *details = describe_service(record)
    assert f"writer     ready: pid {sleeper.pid}, up " in head
    assert details == [
        "          consumers: agentlog.search",
        "          stuck partitions: agentlog.tasks.search-2 for 12.5s: DLQ refuses",
    ]
