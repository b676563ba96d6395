"""Keeps a failing connection from flooding the log: one line per kind of failure per window.

While a broker is away or has forgotten its topics, the Kafka client retries every 100 ms and
logs each failure (thousands of identical ``OffsetCommit failed … UnknownTopicOrPartition``
lines a minute). The first line of a kind is what a person needs; the rest only bury the line
that says what happened. So warnings and errors from the noisy loggers pass once per
``window_s`` per (logger, message template), and the next one that passes says how many were
held back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

__all__ = ["NOISY_LOGGERS", "RepeatFilter"]

#: Loggers whose warnings repeat while a broker is unreachable or forgetful.
NOISY_LOGGERS = ("aiokafka", "kafka", "agentlog.transport", "services.supervisor.relay")


class RepeatFilter(logging.Filter):
    """Passes a repeated warning once per window, then notes how many it held back."""

    def __init__(
        self,
        loggers: Iterable[str] = NOISY_LOGGERS,
        *,
        window_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._prefixes = tuple(loggers)
        self._window_s = window_s
        self._clock = clock
        #: (logger, template) → (when it last passed, how many were held back since).
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a repeat inside its window; a passing repeat carries the held-back count."""
        if record.levelno < logging.WARNING or not self._noisy(record.name):
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self._window_s:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        held = last[1] if last is not None else 0
        self._seen[key] = (now, 0)
        if held:
            # Said once on the record itself, so every handler and format shows it.
            record.msg = f"{record.msg} ({held} more like this in the last {self._window_s:.0f} s)"
        return True

    def _noisy(self, name: str) -> bool:
        return any(name == p or name.startswith(f"{p}.") for p in self._prefixes)
