"""The one error the embedded stack raises when a component cannot be started or stopped."""

from __future__ import annotations

from pathlib import Path

__all__ = ["StackError", "log_tail"]


class StackError(RuntimeError):
    """A component of the embedded stack failed; the message names it and quotes its log."""


def log_tail(log: Path, lines: int = 20) -> str:
    """The last lines of a component's log, for error messages (empty if unreadable)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
