"""The budget ledger: what a workflow spent, what it may spend, and which limit the next step
would pass."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from schemas.controls import Budget, Ledger
from schemas.events import WorkflowPolicy
from schemas.messages import GoalSubmitted
from shared.domain.state import WorkflowState

__all__ = [
    "Limit",
    "budget_problem",
    "effective_budget",
    "exhausted_limit",
    "ledger_at",
    "policy_for",
]

Limit = Literal["steps", "tokens", "usd", "seconds"]


def ledger_at(state: WorkflowState, now: datetime) -> Ledger:
    """The ledger with the wall time since the budget's clock started."""
    seconds = (now - state.started_at).total_seconds() if state.started_at else 0.0
    return state.spent.ledger(seconds=max(seconds, 0.0))


def effective_budget(state: WorkflowState) -> Budget:
    """The policy's budget plus every grant a human added."""
    budget, granted = state.policy.budget, state.granted

    def plus(limit: float | None, extra: float) -> float | None:
        return None if limit is None else limit + extra

    steps = plus(budget.max_steps, granted.add_steps)
    tokens = plus(budget.max_tokens, granted.add_tokens)
    return Budget(
        max_steps=int(steps) if steps is not None else None,
        max_tokens=int(tokens) if tokens is not None else None,
        max_usd=plus(budget.max_usd, granted.add_usd),
        max_seconds=plus(budget.max_seconds, granted.add_seconds),
    )


def exhausted_limit(state: WorkflowState, now: datetime) -> Limit | None:
    """The limit one more step would pass, or None while the budget allows it.

    Steps are counted before they run (the next one must fit); tokens, dollars and seconds are
    known only afterwards, so the next step is refused once they are used up. Runs before every
    scheduled step, so it reads the numbers directly instead of building models.
    """
    budget, granted, spent = state.policy.budget, state.granted, state.spent
    if budget.max_steps is not None and spent.steps + 1 > budget.max_steps + granted.add_steps:
        return "steps"
    if budget.max_tokens is not None and spent.tokens >= budget.max_tokens + granted.add_tokens:
        return "tokens"
    if budget.max_usd is not None and spent.usd >= budget.max_usd + granted.add_usd:
        return "usd"
    if budget.max_seconds is not None and state.started_at is not None:
        elapsed = (now - state.started_at).total_seconds()
        if elapsed >= budget.max_seconds + granted.add_seconds:
            return "seconds"
    return None


def _asked(goal: GoalSubmitted) -> dict[str, float | None]:
    return {
        "max_steps": goal.max_steps,
        "max_tokens": goal.max_tokens,
        "max_usd": goal.max_usd,
        "max_seconds": goal.max_seconds,
    }


def budget_problem(goal: GoalSubmitted, ceiling: Budget) -> str | None:
    """Why a goal's budget request is refused (over the operator's maximum), or None."""
    for name, asked in _asked(goal).items():
        limit = getattr(ceiling, name)
        if asked is not None and limit is not None and asked > limit:
            return f"{name} {asked:g} is over the operator's maximum {limit:g}"
    return None


def policy_for(goal: GoalSubmitted, defaults: WorkflowPolicy) -> WorkflowPolicy:
    """The policy a goal's workflow runs under, frozen at start: the operator's defaults with
    what the goal asks for (its budget, gated steps, prompt versions, revision limit)."""
    asked = {k: v for k, v in _asked(goal).items() if v is not None}
    update: dict[str, object] = {"budget": defaults.budget.model_copy(update=asked)}
    if goal.max_revisions is not None:
        update["max_revisions"] = goal.max_revisions
    if goal.approval_required:
        steps = list(dict.fromkeys([*defaults.approval_steps, *goal.approval_required]))
        update["approval_steps"] = steps
    if goal.prompts:
        update["prompts"] = {**defaults.prompts, **goal.prompts}
    return defaults.model_copy(update=update)
