"""The critic service: judges drafts against an explicit rubric."""

from __future__ import annotations

from schemas.messages import CritiqueTask
from shared.agents.critic import critique_draft
from shared.runtime.worker_main import model_agent, worker_entrypoint

__all__ = ["main", "make_perform"]

make_perform = model_agent(CritiqueTask, critique_draft)
main = worker_entrypoint("critic", CritiqueTask, make_perform)
