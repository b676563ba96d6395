"""Kept for importers of the first layout: publishing and waiting moved to ``shared.commands``
(shared with the Python client), ``read_state`` to ``shared.readside.queries``."""

from __future__ import annotations

from shared.commands import (
    WaitTimeoutError,
    open_store,
    publish_cancel,
    publish_goal,
    receive_completion,
    wait_for_completion,
)
from shared.readside.queries import read_state

__all__ = [
    "WaitTimeoutError",
    "open_store",
    "publish_cancel",
    "publish_goal",
    "read_state",
    "receive_completion",
    "wait_for_completion",
]
