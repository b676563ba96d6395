"""The workflow a piece of work belongs to, for log lines: a context variable, set once.

The transport binds it around each record it handles (``shared.transport.pipeline``), from the
record's key, which is its workflow id; everything the handler logs, and the transport's own
lines about the record, then carry it (``shared.telemetry.logs``). A context variable follows
each asyncio task, so concurrent partitions never see each other's workflow.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["current_workflow_id", "workflow_context"]

_workflow_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "agentlog_workflow_id", default=None
)


def current_workflow_id() -> str | None:
    """The workflow the current task works on, if one was bound."""
    return _workflow_id.get()


@contextmanager
def workflow_context(workflow_id: str | bytes | None) -> Iterator[None]:
    """Bind ``workflow_id`` (a record key may arrive as bytes) for the duration of the block."""
    if isinstance(workflow_id, bytes):
        workflow_id = workflow_id.decode("utf-8", errors="replace")
    token = _workflow_id.set(workflow_id or None)
    try:
        yield
    finally:
        _workflow_id.reset(token)
