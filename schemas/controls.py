"""Value types of the agent controls: budgets, their ledger, grants, and the step kinds a human
may gate."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import Message

__all__ = ["AGENT_STEPS", "Budget", "BudgetGrant", "Ledger", "StepKind"]

#: What a workflow does, step by step; ``deliver`` publishes the completion downstream.
StepKind = Literal["search", "write", "critique", "summarize", "deliver"]
AGENT_STEPS: dict[str, StepKind] = {
    "search": "search",
    "writer": "write",
    "critic": "critique",
    "summarizer": "summarize",
}


class Budget(Message):
    """Per-workflow limits; None means unlimited."""

    max_steps: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_usd: float | None = Field(default=None, gt=0)
    max_seconds: float | None = Field(default=None, gt=0)


class BudgetGrant(Message):
    """What a human adds to a workflow's budget."""

    add_steps: int = Field(default=0, ge=0)
    add_tokens: int = Field(default=0, ge=0)
    add_usd: float = Field(default=0.0, ge=0)
    add_seconds: float = Field(default=0.0, ge=0)

    @property
    def empty(self) -> bool:
        """Adds nothing."""
        return not (self.add_steps or self.add_tokens or self.add_usd or self.add_seconds)


class Ledger(Message):
    """What a workflow has spent so far: steps scheduled, tokens, dollars, seconds."""

    steps: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    usd: float = 0.0
    seconds: float = 0.0

    @property
    def tokens(self) -> int:
        """Input and output tokens together."""
        return self.tokens_in + self.tokens_out
