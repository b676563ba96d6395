"""How the agent-control events change a workflow's state (the fold's second half).

Kept apart from ``state.py`` so the core flow's fold stays readable; ``WorkflowState._fold``
hands every event it does not know to ``fold_control``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.events import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    Backtracked,
    BudgetExhausted,
    CycleDetected,
    DomainEvent,
    EscalatedToHuman,
    TaskReassigned,
)
from shared.domain.statuses import WorkflowStatus

if TYPE_CHECKING:
    from shared.domain.state import WorkflowState

__all__ = ["fold_control"]


def fold_control(state: WorkflowState, event: DomainEvent) -> None:
    """Fold one agent-control event (budgets, approvals, cycles, escalations)."""
    match event:
        case ApprovalRequested():
            state.status = WorkflowStatus.PENDING_APPROVAL
            state.pending = event
        case ApprovalGranted():
            pending = state.pending
            state.pending = None
            state.status = WorkflowStatus.RUNNING
            if event.budget is not None:
                g = state.granted
                state.granted = g.model_copy(
                    update={
                        "add_steps": g.add_steps + event.budget.add_steps,
                        "add_tokens": g.add_tokens + event.budget.add_tokens,
                        "add_usd": g.add_usd + event.budget.add_usd,
                        "add_seconds": g.add_seconds + event.budget.add_seconds,
                    }
                )
            if pending is not None and pending.kind == "step" and pending.step is not None:
                state.approved_steps.add(pending.step)
            if pending is not None and pending.kind == "escalation":
                state.escalation = None
        case ApprovalDenied():
            state.pending = None
        case CycleDetected():
            state.cycles[event.agent] = state.cycles.get(event.agent, 0) + 1
            state.recent_steps[event.agent] = []
        case Backtracked():
            state.strategies[event.agent] = event.strategy
            state.hidden_refs.update(event.dropped_refs)
            # What the writer would be handed next must not include the loop's memory.
            state.fresh_memory = [m for m in state.fresh_memory if m.ref not in state.hidden_refs]
        case EscalatedToHuman():
            state.escalation = event
        case TaskReassigned():
            task = state.tasks.get(event.task_id)
            if task is not None:
                task.open = False
        case BudgetExhausted():
            pass  # the ApprovalRequested that follows changes the status
