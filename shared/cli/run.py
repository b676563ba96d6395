"""`agentlog run <service>`: start one service (or several replicas of it) in the foreground."""

from __future__ import annotations

import importlib
import signal
import subprocess
import sys
from enum import StrEnum
from types import FrameType
from typing import Annotated

import typer

__all__ = ["ServiceName", "run", "run_replicas", "supervise"]


class ServiceName(StrEnum):
    """The five services."""

    supervisor = "supervisor"
    search = "search"
    writer = "writer"
    critic = "critic"
    summarizer = "summarizer"


def run(
    service: ServiceName,
    replicas: Annotated[
        int,
        typer.Option(
            "--replicas",
            min=1,
            help="Run this many processes of the service; they share its consumer groups.",
        ),
    ] = 1,
) -> None:
    """Run one service in the foreground until SIGTERM or Ctrl-C.

    The same as `python -m services.<service>`. With `--replicas N`, N such processes share
    the service's consumer groups (the broker splits the partitions between them); SIGTERM and
    Ctrl-C reach every one, and the command exits when all have.
    """
    if replicas == 1:
        module = importlib.import_module(f"services.{service.value}.main")
        module.main()
        return
    raise typer.Exit(run_replicas(service.value, replicas))


def run_replicas(service: str, replicas: int) -> int:
    """Run ``replicas`` processes of ``service`` until all exit (see :func:`supervise`)."""
    return supervise([[sys.executable, "-m", f"services.{service}"]] * replicas)


def supervise(commands: list[list[str]]) -> int:
    """Run ``commands`` as child processes on this terminal until all exit, forwarding SIGTERM
    and SIGINT to them; 0, or the first non-zero exit code."""
    children = [subprocess.Popen(command) for command in commands]

    def forward(signum: int, frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        codes = [child.wait() for child in children]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return next((code for code in codes if code != 0), 0)
