"""The writer service: drafts and revises reports through the model port."""

from __future__ import annotations

from schemas.messages import WriteTask
from shared.agents.writer import write_draft
from shared.runtime.worker_main import model_agent, worker_entrypoint

__all__ = ["main", "make_perform"]

make_perform = model_agent(WriteTask, write_draft)
main = worker_entrypoint("writer", WriteTask, make_perform)
