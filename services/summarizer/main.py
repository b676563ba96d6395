"""The summarizer service: compacts working memory into the versioned project manifest."""

from __future__ import annotations

from schemas.messages import SummarizeTask
from shared.agents.summarizer import summarize_memory
from shared.runtime.worker_main import model_agent, worker_entrypoint

__all__ = ["main", "make_perform"]

make_perform = model_agent(SummarizeTask, summarize_memory)
main = worker_entrypoint("summarizer", SummarizeTask, make_perform)
