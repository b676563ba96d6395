"""Time as an injected dependency, so the domain never reads a clock itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Tells the time."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    """The machine's UTC clock."""

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)
