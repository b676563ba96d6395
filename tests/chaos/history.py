"""What a workflow's recorded history must look like, however many processes died during it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from shared.domain import TERMINAL_EVENTS
from shared.eventstore import RecordedEvent

__all__ = ["assert_clean_history", "attempts_of", "result_events", "task_agents"]

# One letter per step; scheduling, time-outs and failures are bookkeeping around the steps.
_STEP_LETTERS = {
    "WorkflowStarted": "S",
    "PassagesRetrieved": "P",
    "MemoryCompacted": "M",
    "DraftWritten": "D",
    "CritiqueIssued": "C",
    "WorkflowCompleted": "X",
}
# Start, research, then (compact?, draft, critique) until the critic approves, then complete.
_COMPLETED_STEPS = re.compile(r"SP(M?DC)+X")
#: The event that records a task's successful result, with the agent that must have done it.
_RESULT_AGENT = {
    "PassagesRetrieved": "search",
    "DraftWritten": "writer",
    "CritiqueIssued": "critic",
    "MemoryCompacted": "summarizer",
}


def task_agents(events: Sequence[RecordedEvent]) -> dict[str, str]:
    """Every scheduled task id with its agent."""
    return {e.data["task_id"]: e.data["agent"] for e in events if e.type == "TaskScheduled"}


def attempts_of(events: Sequence[RecordedEvent], task_id: str) -> list[int]:
    """The attempts scheduled for one task, in order."""
    return [
        int(e.data["attempt"])
        for e in events
        if e.type == "TaskScheduled" and e.data["task_id"] == task_id
    ]


def result_events(events: Sequence[RecordedEvent], event_type: str) -> list[RecordedEvent]:
    """The recorded results of one kind (e.g. every ``CritiqueIssued``)."""
    return [e for e in events if e.type == event_type]


def assert_clean_history(events: Sequence[RecordedEvent]) -> None:
    """Assert that a completed workflow's history has every step once and no duplicate effect."""
    types = [e.type for e in events]
    assert [e.version for e in events] == list(range(1, len(events) + 1)), types
    positions = [e.position for e in events]
    assert positions == sorted(set(positions)), "positions follow commit order"
    assert len({e.event_id for e in events}) == len(events), "event ids are unique"

    terminal = [e for e in events if e.type in TERMINAL_EVENTS]
    assert [e.type for e in terminal] == ["WorkflowCompleted"], f"one completion: {types}"
    assert events[-1] is terminal[0], f"nothing after the terminal event: {types}"
    steps = "".join(_STEP_LETTERS[t] for t in types if t in _STEP_LETTERS)
    assert _COMPLETED_STEPS.fullmatch(steps), f"unexpected steps {steps!r}: {types}"

    scheduled = Counter(
        (e.data["task_id"], int(e.data["attempt"])) for e in events if e.type == "TaskScheduled"
    )
    assert max(scheduled.values()) == 1, f"an attempt was scheduled twice: {scheduled}"
    closed = Counter(
        (e.data["task_id"], int(e.data["attempt"]))
        for e in events
        if e.type in ("TaskTimedOut", "TaskFailed")
    )
    assert not closed or max(closed.values()) == 1, f"an attempt was closed twice: {closed}"
    agents = task_agents(events)
    for task_id in agents:
        attempts = attempts_of(events, task_id)
        assert attempts == list(range(1, len(attempts) + 1)), f"{task_id} attempts {attempts}"
        # Every attempt but the last ended by time-out or failure before the next began.
        assert all((task_id, a) in closed for a in attempts[:-1]), f"{task_id}: {closed}"

    results = Counter(e.data["task_id"] for e in events if e.type in _RESULT_AGENT)
    assert set(results) == set(agents), f"every task has a result: {results} vs {agents}"
    assert max(results.values()) == 1, f"a task's result was recorded twice: {results}"
    for event in events:
        if event.type in _RESULT_AGENT:
            assert agents[event.data["task_id"]] == _RESULT_AGENT[event.type], event
