"""A workflow's state, folded from its domain events."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from schemas.events import (
    CritiqueIssued,
    DomainEvent,
    DraftWritten,
    MemoryCompacted,
    PassagesRetrieved,
    TaskFailed,
    TaskScheduled,
    TaskTimedOut,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowPolicy,
    WorkflowStarted,
)
from schemas.messages import AgentName, MemoryItem, Passage

__all__ = [
    "TERMINAL_EVENTS",
    "TaskState",
    "WorkflowState",
    "WorkflowStatus",
    "replay",
    "status_after",
]


class WorkflowStatus(StrEnum):
    """Where a workflow is in its life."""

    NEW = "new"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """No further events change the outcome."""
        return self in (WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED)


#: Event type → the status it ends a workflow in; no event follows one of these.
TERMINAL_EVENTS: dict[str, WorkflowStatus] = {
    WorkflowCompleted.event_type(): WorkflowStatus.COMPLETED,
    WorkflowFailed.event_type(): WorkflowStatus.FAILED,
    WorkflowCancelled.event_type(): WorkflowStatus.CANCELLED,
}


def status_after(last_event_type: str) -> WorkflowStatus:
    """A workflow's status known only from its last event's type (no replay needed)."""
    return TERMINAL_EVENTS.get(last_event_type, WorkflowStatus.RUNNING)


@dataclass
class TaskState:
    """The latest attempt of one task."""

    task_id: str
    agent: AgentName
    attempt: int
    deadline: datetime
    command_type: str
    command: dict[str, object]
    open: bool = True


@dataclass
class WorkflowState:
    """Everything the supervisor needs to decide the next step."""

    workflow_id: str
    version: int = 0
    status: WorkflowStatus = WorkflowStatus.NEW
    goal: str = ""
    constraints: list[str] = field(default_factory=list)
    policy: WorkflowPolicy = field(default_factory=WorkflowPolicy)
    passages: list[Passage] = field(default_factory=list)
    drafts: list[DraftWritten] = field(default_factory=list)
    critiques: list[CritiqueIssued] = field(default_factory=list)
    manifest: MemoryCompacted | None = None
    tasks: dict[str, TaskState] = field(default_factory=dict)
    tasks_scheduled: int = 0
    # Working memory gathered since the last compaction (what the summarizer would compress).
    fresh_memory: list[MemoryItem] = field(default_factory=list)
    outcome_reason: str | None = None

    @property
    def open_tasks(self) -> list[TaskState]:
        """Tasks awaiting a result, in scheduling order."""
        return [t for t in self.tasks.values() if t.open]

    @property
    def memory_chars(self) -> int:
        """Size of the working memory the writer would be handed."""
        manifest = len(self.manifest.manifest) if self.manifest else 0
        return manifest + sum(len(item.text) for item in self.fresh_memory)

    @property
    def revision(self) -> int:
        """The latest draft's revision number (-1 before the first draft)."""
        return self.drafts[-1].revision if self.drafts else -1

    def apply(self, event: DomainEvent) -> None:
        """Fold one event into the state (the only place state changes)."""
        self.version += 1
        match event:
            case WorkflowStarted():
                self.status = WorkflowStatus.RUNNING
                self.goal = event.goal
                self.constraints = list(event.constraints)
                self.policy = event.policy
                self.fresh_memory.append(MemoryItem(kind="goal", ref="goal", text=event.goal))
            case TaskScheduled():
                self.tasks_scheduled += 1
                self.tasks[event.task_id] = TaskState(
                    event.task_id,
                    event.agent,
                    event.attempt,
                    event.deadline,
                    event.command_type,
                    dict(event.command),
                )
            case PassagesRetrieved():
                self._close(event.task_id)
                self.passages = list(event.passages)
                self.fresh_memory.extend(
                    MemoryItem(kind="passage", ref=p.source_id, text=p.text) for p in event.passages
                )
            case DraftWritten():
                self._close(event.task_id)
                self.drafts.append(event)
                ref = f"draft-{event.revision}"
                self.fresh_memory.append(MemoryItem(kind="draft", ref=ref, text=event.draft))
            case CritiqueIssued():
                self._close(event.task_id)
                self.critiques.append(event)
                text = "\n".join(event.feedback) or event.verdict
                ref = f"critique-{event.revision}"
                self.fresh_memory.append(MemoryItem(kind="critique", ref=ref, text=text))
            case MemoryCompacted():
                self._close(event.task_id)
                self.manifest = event
                self.fresh_memory = []
            case TaskFailed() | TaskTimedOut():
                self._close(event.task_id)
            case WorkflowCompleted():
                self.status = WorkflowStatus.COMPLETED
            case WorkflowFailed():
                self.status = WorkflowStatus.FAILED
                self.outcome_reason = event.reason
            case WorkflowCancelled():
                self.status = WorkflowStatus.CANCELLED
                self.outcome_reason = event.reason

    def _close(self, task_id: str) -> None:
        task = self.tasks.get(task_id)
        if task is not None:
            task.open = False


def replay(workflow_id: str, events: Iterable[DomainEvent]) -> WorkflowState:
    """Rebuild a workflow's state from its history."""
    state = WorkflowState(workflow_id)
    for event in events:
        state.apply(event)
    return state
