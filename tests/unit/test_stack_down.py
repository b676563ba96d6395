"""What `stack down` stops: every broker daemon of its state dir, whatever stack.json says, and
nothing else (small real processes stand in for the brokers: a fake Tansu binary and sleepers;
no Postgres is started)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import shared.stack.broker
from shared.stack import EmbeddedStack
from shared.stack.broker import EmbeddedBroker
from shared.stack.kafka import EmbeddedKafka
from shared.stack.process import find_free_port, wait_until
from shared.stack.state import (
    STATE_FILE_NAME,
    BrokerKind,
    ProcessRecord,
    StackState,
    write_record,
    write_state,
)
from tests.unit._clock import step_the_wall_clock

# Stands in for Tansu: takes the same arguments and accepts connections on --listener-url.
_FAKE_TANSU = """\
import socket, sys
url = sys.argv[sys.argv.index("--listener-url") + 1]
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(url.rsplit(":", 1)[1])))
server.listen()
while True:
    server.accept()[0].close()
"""


def _ours(tmp_path: Path) -> list[psutil.Process]:
    """The live processes this test started: each names its temp dir on its command line."""
    found = []
    for proc in psutil.process_iter():
        try:
            if str(tmp_path) in " ".join(proc.cmdline()) and proc.status() != "zombie":
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty state dir; whatever the test started is killed afterwards."""
    path = tmp_path / ".agentlog"
    path.mkdir()
    yield path
    for proc in _ours(tmp_path):
        proc.kill()


@pytest.fixture
def fake_tansu(tmp_path: Path) -> str:
    """An executable that behaves like Tansu as far as the stack can tell."""
    binary = tmp_path / "fake-tansu"
    binary.write_text(f"#!{sys.executable}\n{_FAKE_TANSU}")
    binary.chmod(0o755)
    return str(binary)


def _sleeper_argv(tmp_path: Path) -> list[str]:
    return [sys.executable, "-c", "import time; time.sleep(120)", str(tmp_path)]


def _dead(pid: int) -> bool:
    # An orphaned daemon stays a zombie until init reaps it: it has exited all the same.
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _write_stack_json(state_dir: Path, broker: ProcessRecord, kind: BrokerKind) -> None:
    """stack.json as `up` writes it; the Postgres it names is long gone."""
    postgres = ProcessRecord(pid=2**22 + 1, port=1, started_at=1.0)
    state = StackState(postgres=postgres, broker=broker, broker_kind=kind)
    write_state(state_dir / STATE_FILE_NAME, state)


def test_down_stops_a_broker_that_no_stack_json_names(state_dir: Path, fake_tansu: str) -> None:
    """A broker started by an `up` that never wrote stack.json (it failed later) is stopped."""
    record = EmbeddedBroker(state_dir, fake_tansu).start(find_free_port())

    EmbeddedStack(state_dir, broker_binary=fake_tansu).down()

    assert not (state_dir / STATE_FILE_NAME).exists()
    assert wait_until(lambda: _dead(record.pid), 5.0)


def test_down_stops_a_broker_whose_start_was_interrupted(
    state_dir: Path, fake_tansu: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker whose start is interrupted (Ctrl-C) before it answers is stopped by `down`."""

    def interrupted(*_args: object, **_kwargs: object) -> bool:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(shared.stack.broker, "wait_until", interrupted)
        with pytest.raises(KeyboardInterrupt):
            EmbeddedBroker(state_dir, fake_tansu).start(find_free_port())
    [orphan] = _ours(state_dir.parent)

    EmbeddedStack(state_dir, broker_binary=fake_tansu).down()

    assert wait_until(lambda: _dead(orphan.pid), 5.0)


def test_down_stops_both_kinds_of_broker_whatever_stack_json_names(
    state_dir: Path, fake_tansu: str
) -> None:
    """With stack.json naming a Tansu broker, a Kafka broker on record is stopped as well."""
    tansu = EmbeddedBroker(state_dir, fake_tansu).start(find_free_port())
    _write_stack_json(state_dir, tansu, BrokerKind.TANSU)
    kafka = EmbeddedKafka(state_dir).daemon.spawn(_sleeper_argv(state_dir.parent), port=1)

    EmbeddedStack(state_dir, broker_binary=fake_tansu).down()

    assert wait_until(lambda: _dead(tansu.pid) and _dead(kafka.pid), 5.0)
    assert list(state_dir.glob("*.pid")) == []


def test_down_finds_its_broker_after_a_wall_clock_step(
    state_dir: Path, fake_tansu: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the wall clock is stepped by an hour, `down` still stops the broker it started."""
    record = EmbeddedBroker(state_dir, fake_tansu).start(find_free_port())
    _write_stack_json(state_dir, record, BrokerKind.TANSU)
    step_the_wall_clock(monkeypatch, 3600.0)

    EmbeddedStack(state_dir, broker_binary=fake_tansu).down()

    assert wait_until(lambda: _dead(record.pid), 5.0)


def test_a_wall_clock_step_leaves_a_live_broker_healthy(
    state_dir: Path, fake_tansu: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clock step that moves the boot time by a second (the kernel reports it in whole
    seconds, so a step of a fraction can) does not make a live broker look dead, which would
    make `up` start a second one."""
    record = EmbeddedBroker(state_dir, fake_tansu).start(find_free_port())
    _write_stack_json(state_dir, record, BrokerKind.TANSU)
    step_the_wall_clock(monkeypatch, -1.0)

    status = EmbeddedStack(state_dir, broker_binary=fake_tansu).status()

    assert (status.broker.healthy, status.broker.pid) == (True, record.pid)


@pytest.mark.parametrize("stranger", ["unrelated process", "another state dir's broker"])
def test_down_never_signals_a_process_it_did_not_start(
    state_dir: Path, fake_tansu: str, stranger: str
) -> None:
    """A record whose pid now belongs to a process this state dir did not start (a reused pid)
    leaves that process running."""
    argv = _sleeper_argv(state_dir.parent)
    if stranger == "unrelated process":
        # Detached, like a daemon: init reaps it once the fixture kills it.
        detach = 'exec "$@" </dev/null >/dev/null 2>&1 & echo $!'
        out = subprocess.run(["/bin/sh", "-c", detach, "sh", *argv], capture_output=True)
        pid = int(out.stdout)
    else:
        other = state_dir.parent / "other" / ".agentlog"
        other.mkdir(parents=True)
        pid = EmbeddedBroker(other).daemon.spawn(argv, port=1).pid
    # The process that last had this pid, a broker of ours, started a minute before this one.
    reused = ProcessRecord(pid=pid, port=1, started_at=psutil.Process(pid).create_time() - 60)
    write_record(EmbeddedBroker(state_dir).daemon.record_file, reused)
    _write_stack_json(state_dir, reused, BrokerKind.TANSU)

    EmbeddedStack(state_dir, broker_binary=fake_tansu).down()

    assert not _dead(pid)
