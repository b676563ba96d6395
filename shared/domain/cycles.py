"""Content-based cycle detection: fingerprints of what an agent was asked and what it answered.

A step's input fingerprint covers its command without what changes on every attempt anyway
(ids, attempt, deadline, revision number, model profile); its output fingerprint covers the
answer, normalised (case and whitespace). The same (input, output) pair ``CYCLE_LENGTH`` times
in a row for one agent is a cycle: asking again would get the same answer again.

Only producing agents are watched (writer, summarizer): a critic judging an identical draft
identically is doing its job, and the loop it sits in is the writer's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import NamedTuple

__all__ = [
    "CYCLE_LENGTH",
    "WATCHED_AGENTS",
    "Step",
    "find_cycle",
    "fingerprint",
    "input_fingerprint",
]

CYCLE_LENGTH = 3
WATCHED_AGENTS = frozenset({"writer", "summarizer"})
_VOLATILE = frozenset(
    {"workflow_id", "task_id", "attempt", "deadline", "revision", "profile", "manifest_version"}
)
# The project manifest is the same facts compacted again (with a new version each time): a
# writer handed the same goal, sources, feedback and previous draft is asked the same thing.
_DERIVED = {"writer": frozenset({"manifest"})}


def fingerprint(value: object) -> str:
    """A short, stable digest of ``value`` after normalising its text."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    normal = " ".join(text.lower().split())
    return hashlib.sha256(normal.encode()).hexdigest()[:16]


def input_fingerprint(command: Mapping[str, object]) -> str:
    """The fingerprint of a task command, without what changes on every attempt.

    Commands are built by the supervisor, never typed by a person, so their JSON needs no
    normalising: hashing it as it is keeps the per-step cost low.
    """
    derived = _DERIVED.get(str(command.get("agent")), frozenset())
    kept = {k: v for k, v in command.items() if k not in _VOLATILE and k not in derived}
    text = json.dumps(kept, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Step(NamedTuple):
    """One step of an agent: the command it was given and what it answered."""

    command: Mapping[str, object]
    output: Mapping[str, object]


def find_cycle(recent: list[Step]) -> tuple[str, str] | None:
    """The (input, output) fingerprints when the newest ``CYCLE_LENGTH`` steps are one and the
    same pair; None otherwise. Outputs are compared first: they differ far more often, and
    hashing a command with all its passages is the expensive part."""
    if len(recent) < CYCLE_LENGTH:
        return None
    last = recent[-CYCLE_LENGTH:]
    outputs = {fingerprint(step.output) for step in last}
    if len(outputs) != 1:
        return None
    inputs = {input_fingerprint(step.command) for step in last}
    if len(inputs) != 1:
        return None
    return inputs.pop(), outputs.pop()
