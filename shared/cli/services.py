"""`agentlog up` and `agentlog down`: the stack and the five services, in the background.

``up`` starts the stack (as ``stack up``) and each service not already running as a daemon in
its own session, logging to ``<state dir>/logs/<service>.log``; the services register
themselves (``shared.runtime.registry``), which is how ``up`` sees them ready and how
``down`` (as ``stack down``) finds and stops them before the stack.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from shared.cli.stack import say, start_stack, stop_stack
from shared.runtime.processes import SERVICES
from shared.runtime.registry import ServiceRecord, list_services, live_process
from shared.stack import StackInfo

__all__ = ["down", "up"]

# Search indexes its corpus before it is ready; a large folder takes a while on first start.
_READY_TIMEOUT_S = 60.0
_LOG_TAIL_LINES = 8


def up(
    services: Annotated[
        bool,
        typer.Option(
            "--services/--no-services",
            help="Also start the five services in the background (default), or only the stack.",
        ),
    ] = True,
) -> None:
    """Start the stack and the five services in the background.

    Services already running are left alone, so it is harmless to repeat.
    """
    stack, info = start_stack()
    if not services:
        return
    running = {r.service: r for r in list_services(stack.state_dir) if live_process(r)}
    started: dict[str, subprocess.Popen[bytes]] = {}
    log_dir = stack.state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    for name in SERVICES:
        if name in running:
            say(f"service   {name:<10} already running (pid {running[name].pid})")
            continue
        started[name] = _spawn(name, stack.state_dir, info, log_dir / f"{name}.log")
    failed = _wait_ready(stack.state_dir, started, log_dir)
    if failed:
        say(f"error: {', '.join(failed)} did not start; `agentlog down` stops the rest")
        raise typer.Exit(1)


def down() -> None:
    """Stop the services, then the stack.

    The same as `agentlog stack down`.
    """
    stop_stack()


def _spawn(name: str, state_dir: Path, info: StackInfo, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AGENTLOG_STATE_DIR": str(state_dir),
        "AGENTLOG_DATABASE_URL": info.database_url,
        "AGENTLOG_KAFKA_BOOTSTRAP": info.kafka_bootstrap,
    }
    with log.open("ab") as out:
        # Own session: the services outlive this command and ignore the terminal's Ctrl-C.
        return subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_ready(
    state_dir: Path, started: dict[str, subprocess.Popen[bytes]], log_dir: Path
) -> list[str]:
    """Wait until each started service says it is ready; report each; the ones that failed."""
    pending = dict(started)
    failed: list[str] = []
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while pending:
        records: dict[int, ServiceRecord] = {r.pid: r for r in list_services(state_dir)}
        for name, proc in list(pending.items()):
            record = records.get(proc.pid)
            code = proc.poll()
            if record is not None and record.state == "ready":
                say(f"service   {name:<10} started: pid {proc.pid}, log {log_dir / name}.log")
            elif code is not None:
                say(f"service   {name:<10} exited with code {code}; its log ends:")
                say(_indent(_tail(log_dir / f"{name}.log")))
                failed.append(name)
            elif time.monotonic() > deadline:
                say(
                    f"service   {name:<10} not ready after {_READY_TIMEOUT_S:.0f}s (pid {proc.pid})"
                )
                say(_indent(_tail(log_dir / f"{name}.log")))
                failed.append(name)
            else:
                continue
            del pending[name]
        if pending:
            time.sleep(0.1)
    return failed


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(empty log)"


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())
