"""Whether an incoming message may act on a workflow at all, before anything is decided.

``decide`` quietly ignores what is merely late or repeated (a stale attempt, the same goal
again): that is normal at-least-once traffic. What ``admit`` refuses is different: a message
that means something else than the workflow it names — a second goal under an existing id, a
result for a workflow or task that never existed, a result from an agent the task was not
given to. Those are refused visibly (the supervisor dead-letters them) and change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.controls import Budget
from schemas.events import WorkflowForked
from schemas.messages import (
    CritiqueResult,
    DraftResult,
    GoalSubmitted,
    ManifestResult,
    SearchResult,
    TaskFailure,
    TaskResult,
)
from shared.agents.constraints import constraint_problem
from shared.domain.budget import budget_problem
from shared.domain.state import WorkflowState
from shared.domain.statuses import TERMINAL_EVENTS, WorkflowStatus
from shared.domain.triggers import (
    CancelRequested,
    ForkRequested,
    GoalReceived,
    ResultReceived,
    RollbackRequested,
    Tick,
    Trigger,
)

__all__ = ["Refusal", "admit", "target_problem"]

#: The result each agent's tasks are answered with (besides a TaskFailure).
_RESULT_TYPES: dict[str, type[TaskResult]] = {
    "search": SearchResult,
    "writer": DraftResult,
    "critic": CritiqueResult,
    "summarizer": ManifestResult,
}


@dataclass(frozen=True)
class Refusal:
    """Why a message is refused: a dead-letter reason and one line for people."""

    reason: str
    detail: str


def admit(state: WorkflowState, trigger: Trigger, *, principal_agent: str | None) -> Refusal | None:
    """None when ``trigger`` may be decided on; else why not.

    ``principal_agent`` is the agent the verified signer speaks for (None when the message was
    not authenticated as an agent).
    """
    match trigger:
        case GoalReceived():
            return _admit_goal(state, trigger.goal, trigger.ceiling)
        case ResultReceived():
            return _admit_result(state, trigger.result, principal_agent)
        case CancelRequested() if state.status is WorkflowStatus.NEW:
            return Refusal("unknown-workflow", f"no workflow {trigger.cancel.workflow_id!r}")
        case RollbackRequested():
            return _admit_rollback(state, trigger.rollback.to_version)
        case ForkRequested():
            return _admit_fork(state, trigger)
        case CancelRequested() | Tick():
            return None
    return None


def target_problem(state: WorkflowState, version: int) -> str | None:
    """Why the state at ``version`` cannot be continued from (rolled back to or forked), or
    None. The target must be on the effective history and must not end a run."""
    if state.status is WorkflowStatus.NEW:
        return f"no workflow {state.workflow_id!r}"
    if version >= state.version:
        return f"version {version} is not before the workflow's current version {state.version}"
    if version in state.abandoned_versions or version not in state.effective_versions:
        return f"version {version} is on an abandoned branch; pick an effective event"
    event = next(e for v, e in state.effective if v == version)
    if event.event_type() in TERMINAL_EVENTS:
        return f"version {version} ends a run ({event.event_type()}); pick an earlier event"
    return None


def _admit_rollback(state: WorkflowState, to_version: int) -> Refusal | None:
    if state.status is WorkflowStatus.NEW:
        return Refusal("unknown-workflow", f"no workflow {state.workflow_id!r}")
    problem = target_problem(state, to_version)
    return Refusal("invalid", problem) if problem else None


def _admit_fork(state: WorkflowState, trigger: ForkRequested) -> Refusal | None:
    if state.status is WorkflowStatus.NEW:
        # The handler found the parent and copied its history; an empty copy means no parent.
        if not trigger.history:
            return Refusal(
                "unknown-workflow", f"no workflow {trigger.fork.parent_workflow_id!r} to fork"
            )
        problem = constraint_problem(trigger.fork.constraints or [])
        return Refusal("invalid", problem) if problem else None
    first = state.effective[0][1] if state.effective else None
    same = (
        isinstance(first, WorkflowForked)
        and first.parent_workflow_id == trigger.fork.parent_workflow_id
        and first.parent_version == trigger.fork.at_version
    )
    if same:
        return None  # the same fork again: idempotent
    return Refusal("conflict", f"workflow {state.workflow_id!r} already exists; choose a new id")


def _admit_goal(state: WorkflowState, goal: GoalSubmitted, ceiling: Budget) -> Refusal | None:
    if state.status is WorkflowStatus.NEW:
        problem = constraint_problem(goal.constraints) or budget_problem(goal, ceiling)
        return Refusal("invalid", problem) if problem else None
    # The same goal again is a redelivery or a retrying client: idempotent, not an error.
    same = (
        goal.goal == state.goal
        and list(goal.constraints) == state.constraints
        and (goal.max_revisions is None or goal.max_revisions == state.policy.max_revisions)
    )
    if same:
        return None
    return Refusal(
        "conflict",
        f"workflow {state.workflow_id!r} already exists with a different goal or constraints; "
        "choose another workflow id",
    )


def _admit_result(
    state: WorkflowState, result: TaskResult, principal_agent: str | None
) -> Refusal | None:
    if state.status is WorkflowStatus.NEW:
        return Refusal("unknown-workflow", f"result for unknown workflow {result.workflow_id!r}")
    if result.task_id in state.abandoned_tasks:
        return None  # a late result for an abandoned task: stale; decide ignores it
    task = state.tasks.get(result.task_id)
    if task is None:
        return Refusal("invalid", f"workflow {result.workflow_id!r} has no task {result.task_id!r}")
    if result.agent != task.agent or (
        principal_agent is not None and principal_agent != task.agent
    ):
        sender = principal_agent or result.agent
        return Refusal(
            "unauthorized",
            f"task {result.task_id} was assigned to the {task.agent} agent, not to {sender}",
        )
    expected = _RESULT_TYPES[task.agent]
    if not isinstance(result, expected | TaskFailure):
        return Refusal(
            "invalid",
            f"task {result.task_id} is a {task.agent} task: it takes a {expected.TYPE} or a "
            f"failure, not a {result.TYPE}",
        )
    return None
