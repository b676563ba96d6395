"""Clocks for tests: a step of the wall clock as psutil sees it on Linux (the stack and
registry tests), and a store clock that ticks one second per reading (the audit tests)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import psutil
import pytest

__all__ = ["T0", "TickingClock", "step_the_wall_clock"]

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class TickingClock:
    """Advances one second per reading from ``T0``, so each append has its own time."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def step_the_wall_clock(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """What the kernel reports after the wall clock is stepped (NTP, a VM resumed from a
    snapshot): the boot time moves, and with it every process's create time in psutil."""
    if not sys.platform.startswith("linux"):
        pytest.skip("simulates the Linux kernel's boot time")
    real = psutil._pslinux.boot_time
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: real() + seconds)
