"""Re-driving open work after the broker forgot it: the store is the truth, the log a copy.

When the broker loses its topics (an in-memory broker restarted, a cluster restored from
nothing) three kinds of record may be gone before anyone read them: task commands a worker had
not fetched, results a worker sent into a topic that no longer existed, and completions or
audit records a downstream consumer had not read yet. None is lost for good, because each was
an event in the store first:

* every **open task's** command is published again (the ``TaskScheduled`` event of its latest
  attempt, under the same ``ce_id``): the worker does it again and its result, keyed by
  (workflow, task, attempt), is recorded once however many copies arrive;
* the relay **rewinds** to the events it had published a while before the broker was last
  known intact, so completions and audit records of that window are published again (the same
  ``ce_id`` each time: consumers dedupe).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from schemas.events import TaskScheduled
from shared.domain import replay
from shared.eventstore import EventStore, RecordedEvent
from shared.runtime.codec import decode_history

__all__ = ["PublishedPositions", "open_task_commands"]


async def open_task_commands(store: EventStore, workflow_ids: Iterable[str]) -> list[RecordedEvent]:
    """The ``TaskScheduled`` event of each open task's latest attempt, per workflow in order."""
    found: list[RecordedEvent] = []
    for workflow_id in workflow_ids:
        records = await store.read(workflow_id)
        if not records:
            continue
        state = replay(workflow_id, decode_history(records))
        wanted = {(task.task_id, task.attempt) for task in state.open_tasks}
        for record in records:
            if record.type != TaskScheduled.event_type():
                continue
            data = record.data
            if (data.get("task_id"), data.get("attempt")) in wanted:
                found.append(record)
    return found


class PublishedPositions:
    """When the relay had published up to which position, so it can go back to a moment."""

    def __init__(self, keep: int = 4096) -> None:
        self._marks: deque[tuple[float, int]] = deque(maxlen=keep)

    def mark(self, at: float, position: int) -> None:
        """Everything up to ``position`` was acknowledged by ``at`` (monotonic seconds)."""
        self._marks.append((at, position))

    def before(self, moment: float, default: int) -> int:
        """The last position acknowledged at or before ``moment``; the oldest one known if all
        came later; ``default`` if none is known."""
        if not self._marks:
            return default
        position = self._marks[0][1]
        for at, published in self._marks:
            if at > moment:
                break
            position = published
        return position
