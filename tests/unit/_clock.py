"""A step of the wall clock, as psutil sees it on Linux (shared by the stack and registry
tests)."""

from __future__ import annotations

import sys

import psutil
import pytest

__all__ = ["step_the_wall_clock"]


def step_the_wall_clock(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """What the kernel reports after the wall clock is stepped (NTP, a VM resumed from a
    snapshot): the boot time moves, and with it every process's create time in psutil."""
    if not sys.platform.startswith("linux"):
        pytest.skip("simulates the Linux kernel's boot time")
    real = psutil._pslinux.boot_time
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: real() + seconds)
