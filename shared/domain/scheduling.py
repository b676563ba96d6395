"""Building the next task: the command an agent receives, wrapped in a TaskScheduled event."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.events import TaskScheduled
from schemas.messages import (
    CritiqueTask,
    MemoryItem,
    Passage,
    SearchTask,
    SummarizeTask,
    TaskCommand,
    WriteTask,
)
from shared.domain.blobs import Recorded, compact
from shared.domain.state import TaskState, WorkflowState

__all__ = [
    "reissue",
    "reschedule",
    "schedule_critique",
    "schedule_search",
    "schedule_summary",
    "schedule_write",
]


def _task_id(state: WorkflowState, agent: str) -> str:
    # The stream version of the TaskScheduled event that creates the task: unique within the
    # stream whatever rollbacks happen (versions never repeat), and reproduced by replay.
    return f"{agent}-v{state.version + 1}"


def _deadline(state: WorkflowState, now: datetime) -> datetime:
    return now + timedelta(seconds=state.policy.task_timeout_s)


def _recorded(state: WorkflowState) -> Recorded:
    """Values the stream records verbatim in events before this one: what a command may hold
    by reference (``shared.domain.blobs``)."""
    passages = [p.model_dump(mode="json") for p in state.passages]
    values: list[object] = [state.goal, passages, *(d.draft for d in state.drafts)]
    for passage in passages:
        # The passage as the search recorded it, and its text and the search engine's
        # headline (about 400 characters) for commands that carry only those.
        values += [passage, passage["text"], passage["snippet"]]
    if state.manifest is not None:
        values.append(state.manifest.manifest)
    return Recorded.of(values)


def _scheduled(state: WorkflowState, command: TaskCommand) -> TaskScheduled:
    return TaskScheduled(
        task_id=command.task_id,
        agent=command.agent,
        attempt=command.attempt,
        deadline=command.deadline,
        command_type=command.TYPE,
        # The passages, drafts and manifest it repeats are stored once, in their own events.
        command=compact(command.model_dump(mode="json"), _recorded(state)),
    )


def schedule_search(state: WorkflowState, now: datetime) -> TaskScheduled:
    """Research the goal."""
    query = state.goal
    return _scheduled(
        state,
        SearchTask(
            workflow_id=state.workflow_id,
            task_id=_task_id(state, "search"),
            attempt=1,
            deadline=_deadline(state, now),
            prompt_version=state.policy.prompts.get("search"),
            query=query,
            limit=state.policy.search_limit,
        ),
    )


def writer_passages(state: WorkflowState) -> list[Passage]:
    """The passages the writer may cite: after compaction, only those the manifest kept."""
    if state.manifest is None:
        return list(state.passages)
    kept = set(state.manifest.covered_refs)
    return [p for p in state.passages if p.source_id in kept] or list(state.passages)


def schedule_write(state: WorkflowState, now: datetime) -> TaskScheduled:
    """Write the first draft, or revise the last one with the critic's feedback.

    Drafts and critiques a backtrack dropped are not shown: the writer starts that part over
    with its next strategy.
    """
    drafts = [d for d in state.drafts if f"draft-{d.revision}" not in state.hidden_refs]
    critiques = [c for c in state.critiques if f"critique-{c.revision}" not in state.hidden_refs]
    last_critique = critiques[-1] if critiques else None
    return _scheduled(
        state,
        WriteTask(
            workflow_id=state.workflow_id,
            task_id=_task_id(state, "writer"),
            attempt=1,
            deadline=_deadline(state, now),
            goal=state.goal,
            constraints=state.constraints,
            passages=writer_passages(state),
            feedback=list(last_critique.feedback) if last_critique else [],
            previous_draft=drafts[-1].draft if drafts else None,
            manifest=state.manifest.manifest if state.manifest else None,
            revision=state.revision + 1,
            strategy=state.strategies.get("writer", 0),
            prompt_version=state.policy.prompts.get("writer"),
        ),
    )


def schedule_critique(state: WorkflowState, now: datetime) -> TaskScheduled:
    """Have the critic judge the latest draft before anything is committed."""
    draft = state.drafts[-1]
    return _scheduled(
        state,
        CritiqueTask(
            workflow_id=state.workflow_id,
            task_id=_task_id(state, "critic"),
            attempt=1,
            deadline=_deadline(state, now),
            prompt_version=state.policy.prompts.get("critic"),
            goal=state.goal,
            constraints=state.constraints,
            draft=draft.draft,
            source_ids=sorted({p.source_id for p in writer_passages(state)}),
            revision=draft.revision,
        ),
    )


def schedule_summary(state: WorkflowState, now: datetime) -> TaskScheduled:
    """Compact working memory into the next manifest version."""
    items: list[MemoryItem] = []
    if state.manifest is not None:
        version = state.manifest.manifest_version
        items.append(
            MemoryItem(kind="manifest", ref=f"manifest-v{version}", text=state.manifest.manifest)
        )
    items.extend(memory.item() for memory in state.fresh_memory)
    return _scheduled(
        state,
        SummarizeTask(
            workflow_id=state.workflow_id,
            task_id=_task_id(state, "summarizer"),
            attempt=1,
            deadline=_deadline(state, now),
            prompt_version=state.policy.prompts.get("summarizer"),
            goal=state.goal,
            items=items,
            budget_chars=state.policy.manifest_budget_chars,
            manifest_version=(state.manifest.manifest_version + 1) if state.manifest else 1,
        ),
    )


def reschedule(state: WorkflowState, task: TaskState, now: datetime) -> TaskScheduled:
    """The same task again, as the next attempt with a fresh deadline."""
    command = dict(task.command)
    command["attempt"] = task.attempt + 1
    command["deadline"] = _deadline(state, now).isoformat()
    return TaskScheduled(
        task_id=task.task_id,
        agent=task.agent,
        attempt=task.attempt + 1,
        deadline=_deadline(state, now),
        command_type=task.command_type,
        command=command,
    )


def reissue(state: WorkflowState, task: TaskState, now: datetime) -> TaskScheduled:
    """The same work as a new task (new id, attempt 1): after a rollback or a fork, a task that
    was open belongs to an abandoned branch or to the parent, so its results cannot count."""
    task_id = _task_id(state, task.agent)
    command = dict(task.command)
    command.update(
        workflow_id=state.workflow_id,
        task_id=task_id,
        attempt=1,
        deadline=_deadline(state, now).isoformat(),
    )
    return TaskScheduled(
        task_id=task_id,
        agent=task.agent,
        attempt=1,
        deadline=_deadline(state, now),
        command_type=task.command_type,
        command=command,
    )
