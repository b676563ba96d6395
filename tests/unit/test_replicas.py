"""Replicas: process names, and `agentlog run --replicas` forwarding signals to its children."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from shared.cli.run import supervise
from shared.runtime.processes import ServiceProcesses, replica_names, service_of


def test_replica_names_number_only_services_with_several() -> None:
    """``writer#1..N`` for several replicas, the bare name for one; each maps to its service."""
    names = replica_names({"supervisor": 2, "writer": 1, "critic": 3})
    assert names == ("supervisor#1", "supervisor#2", "writer", "critic#1", "critic#2", "critic#3")
    assert [service_of(n) for n in names] == [
        "supervisor",
        "supervisor",
        "writer",
        "critic",
        "critic",
        "critic",
    ]
    with pytest.raises(ValueError, match="at least one replica"):
        replica_names({"writer": 0})


def test_process_names_must_be_unique(tmp_path: Path) -> None:
    """Two processes under one name would share a log and hide each other: refused."""
    with pytest.raises(ValueError, match="unique"):
        ServiceProcesses({}, tmp_path, ("writer", "writer"))


def test_supervise_forwards_sigterm_to_every_child_and_waits_for_all(tmp_path: Path) -> None:
    """SIGTERM to the parent reaches each child; the parent returns once all exited, with the
    children's non-zero code."""
    child = (
        "import signal, sys, time, pathlib\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))\n"
        f"pathlib.Path({str(tmp_path)!r}, sys.argv[1]).touch()\n"
        "time.sleep(60)\n"
    )

    def terminate_when_ready() -> None:
        deadline = time.monotonic() + 30
        while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_when_ready, daemon=True).start()
    started = time.monotonic()
    code = supervise([[sys.executable, "-c", child, name] for name in ("a", "b")])
    assert code == 3
    assert time.monotonic() - started < 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
