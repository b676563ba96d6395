"""The embedded stack and `agentlog stack up|down|status`, against real daemons.

Each test starts its own stack in a temp dir (not the session's), because these tests kill,
restart and stop it; the fixture stops whatever a failing test leaves behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
from aiokafka import AIOKafkaProducer

import shared.stack.stack
from schemas.topics import TOPICS
from shared.stack import EmbeddedStack, Outcome, StackError
from shared.stack.broker import EmbeddedBroker
from shared.stack.process import wait_until
from shared.stack.topics import create_topics

pytestmark = pytest.mark.integration

# The stack sub-app alone: this file tests it, not the services the full CLI imports.
_CLI = "from shared.cli.stack import stack_app; stack_app(prog_name='agentlog stack')"


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh state dir whose stack is stopped after the test, whatever happened."""
    path = tmp_path / ".agentlog"
    yield path
    EmbeddedStack(path).down()


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLOG_")}
    return subprocess.run(
        [sys.executable, "-c", _CLI, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _eval_status(cwd: Path) -> dict[str, str]:
    """The environment of a command run after ``eval "$(agentlog stack status)"``."""
    script = 'eval "$("$@" status)" && exec env'
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLOG_")}
    out = subprocess.run(
        ["/bin/sh", "-c", script, "sh", sys.executable, "-c", _CLI],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    pairs = (line.split("=", 1) for line in out.splitlines() if line.startswith("AGENTLOG_"))
    return dict(pairs)


def _dead(pid: int) -> bool:
    # An orphaned daemon stays a zombie until init reaps it: it has exited all the same.
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: _dead(pid), 10.0), f"pid {pid} survived SIGKILL"


async def _produce(bootstrap: str) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        record = await producer.send_and_wait(f"stack-test-{uuid.uuid4().hex}", b"ping")
    finally:
        await producer.stop()
    offset: int = record.offset
    return offset


def _fail_creating_topics(bootstrap: str) -> list[str]:
    raise StackError(f"the broker started but its topics could not be created: {bootstrap}")


async def _query(database_url: str, sql: str) -> object:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def test_status_prints_settings_a_shell_can_eval_and_connect_to(state_dir: Path) -> None:
    """After `up`, eval'ing `status` exports settings on which Postgres and the broker answer."""
    up = await asyncio.to_thread(_cli, state_dir.parent, "up")
    assert up.returncode == 0, up.stderr

    env = await asyncio.to_thread(_eval_status, state_dir.parent)

    assert env["AGENTLOG_DATABASE_URL"].endswith("/agentlog")
    assert await _query(env["AGENTLOG_DATABASE_URL"], "SELECT 1") == 1
    assert await _produce(env["AGENTLOG_KAFKA_BOOTSTRAP"]) == 0


async def test_state_file_names_the_running_stack(state_dir: Path) -> None:
    """`up` writes stack.json with the keys shared.settings falls back on."""
    info = await asyncio.to_thread(EmbeddedStack(state_dir).up)

    state = json.loads((state_dir / "stack.json").read_text())

    assert state["database_url"] == info.database_url
    assert state["kafka_bootstrap"] == info.kafka_bootstrap
    assert (state["postgres"]["pid"], state["broker"]["pid"]) == (
        info.postgres.pid,
        info.broker.pid,
    )


async def test_up_twice_is_harmless(state_dir: Path) -> None:
    """A second `up` finds both components healthy and keeps their pids and ports."""
    first = await asyncio.to_thread(EmbeddedStack(state_dir).up)

    second = await asyncio.to_thread(EmbeddedStack(state_dir).up)

    assert (second.postgres.pid, second.postgres.port) == (first.postgres.pid, first.postgres.port)
    assert (second.broker.pid, second.broker.port) == (first.broker.pid, first.broker.port)
    assert second.postgres.outcome is second.broker.outcome is Outcome.ALREADY_RUNNING


async def test_concurrent_ups_start_one_stack(state_dir: Path) -> None:
    """Two `up`s at once agree on one stack instead of racing to start two."""
    first, second = await asyncio.gather(
        asyncio.to_thread(_cli, state_dir.parent, "up"),
        asyncio.to_thread(_cli, state_dir.parent, "up"),
    )

    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout


async def test_up_restarts_a_killed_broker_and_warns_its_data_is_gone(state_dir: Path) -> None:
    """A SIGKILLed broker shows as down, and `up` restarts it on its port, saying so."""
    first = await asyncio.to_thread(EmbeddedStack(state_dir).up)
    await asyncio.to_thread(_kill, first.broker.pid)
    down = await asyncio.to_thread(_cli, state_dir.parent, "status")

    up = await asyncio.to_thread(_cli, state_dir.parent, "up")

    assert down.returncode == 1
    assert "broker    DOWN" in down.stderr
    assert up.returncode == 0, up.stderr
    assert "broker    restarted" in up.stderr
    assert "topics, offsets and consumer groups are gone" in up.stderr
    status = await asyncio.to_thread(EmbeddedStack(state_dir).status)
    assert status.running
    assert status.broker.pid != first.broker.pid
    assert status.broker.port == first.broker.port
    assert await _produce(first.kafka_bootstrap) == 0


async def test_up_restarts_a_killed_postgres_with_its_data(state_dir: Path) -> None:
    """A SIGKILLed postmaster is restarted by `up` on its port, with committed data intact."""
    first = await asyncio.to_thread(EmbeddedStack(state_dir).up)
    await _query(first.database_url, "CREATE TABLE kept AS SELECT 42 AS answer")
    await asyncio.to_thread(_kill, first.postgres.pid)

    second = await asyncio.to_thread(EmbeddedStack(state_dir).up)

    assert second.postgres.outcome is Outcome.RESTARTED
    assert second.broker.outcome is Outcome.ALREADY_RUNNING
    assert second.database_url == first.database_url
    assert await _query(second.database_url, "SELECT answer FROM kept") == 42


async def test_down_leaves_no_process_and_is_idempotent(state_dir: Path) -> None:
    """`down` stops the postmaster, its backends and the broker, and may be repeated."""
    stack = EmbeddedStack(state_dir)
    info = await asyncio.to_thread(stack.up)
    backends = [p.pid for p in psutil.Process(info.postgres.pid).children(recursive=True)]
    pids = [info.postgres.pid, info.broker.pid, *backends]

    await asyncio.to_thread(stack.down)
    await asyncio.to_thread(stack.down)

    assert [pid for pid in pids if not _dead(pid)] == []
    assert not (state_dir / "stack.json").exists()
    assert not (await asyncio.to_thread(stack.status)).running


async def test_down_stops_the_broker_of_an_up_that_failed_after_starting_it(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An `up` that fails after starting the broker writes no stack.json; `down` still stops
    that broker."""
    monkeypatch.setattr(shared.stack.stack, "create_topics", _fail_creating_topics)
    stack = EmbeddedStack(state_dir)
    with pytest.raises(StackError, match="topics could not be created"):
        await asyncio.to_thread(stack.up)
    orphan = EmbeddedBroker(state_dir).recorded()
    assert orphan is not None
    assert not (state_dir / "stack.json").exists()

    await asyncio.to_thread(stack.down)

    assert await asyncio.to_thread(wait_until, lambda: _dead(orphan.pid), 10.0)


async def test_up_after_a_failed_up_keeps_its_broker_and_creates_the_topics(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `up` after one that failed after starting the broker serves that broker (creating
    the topics it may lack) instead of starting a second one."""
    with monkeypatch.context() as patch:
        patch.setattr(shared.stack.stack, "create_topics", _fail_creating_topics)
        with pytest.raises(StackError):
            await asyncio.to_thread(EmbeddedStack(state_dir).up)
    orphan = EmbeddedBroker(state_dir).recorded()
    assert orphan is not None
    created: list[str] = []

    def create_and_note(bootstrap: str) -> list[str]:
        created.extend(create_topics(bootstrap))
        return created

    monkeypatch.setattr(shared.stack.stack, "create_topics", create_and_note)

    info = await asyncio.to_thread(EmbeddedStack(state_dir).up)

    assert (info.broker.pid, info.broker.outcome) == (orphan.pid, Outcome.ALREADY_RUNNING)
    assert {topic.name for topic in TOPICS} <= set(created)


async def test_up_recovers_from_a_stale_state_file(state_dir: Path) -> None:
    """A stack.json naming dead processes reads as stopped, and `up` starts a working stack."""
    stack = EmbeddedStack(state_dir)
    await asyncio.to_thread(stack.up)
    stale = (state_dir / "stack.json").read_text()
    await asyncio.to_thread(stack.down)
    (state_dir / "stack.json").write_text(stale)

    status = await asyncio.to_thread(_cli, state_dir.parent, "status")
    info = await asyncio.to_thread(stack.up)

    assert status.returncode == 1
    assert status.stdout == ""
    assert info.postgres.outcome is info.broker.outcome is Outcome.RESTARTED
    assert await _query(info.database_url, "SELECT 1") == 1
    assert await _produce(info.kafka_bootstrap) == 0


async def test_status_json_of_a_stack_never_started(tmp_path: Path) -> None:
    """`status --json` without a stack says not running, exits 1 and creates nothing."""
    result = await asyncio.to_thread(_cli, tmp_path, "status", "--json")

    assert result.returncode == 1
    assert json.loads(result.stdout)["running"] is False
    assert not (tmp_path / ".agentlog").exists()
