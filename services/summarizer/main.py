"""The summarizer's composition root: compacts working memory into the project manifest."""

from __future__ import annotations

import asyncio
import contextlib

from schemas.messages import SummarizeTask, TaskCommand, TaskResult
from shared.agents.summarizer import summarize_memory
from shared.llm.factory import build_model
from shared.runtime.lifecycle import configure_logging, run_until_signalled
from shared.runtime.worker import Perform
from shared.runtime.worker_main import serve_worker
from shared.settings import Settings

__all__ = ["main", "make_perform"]


async def make_perform(settings: Settings, resources: contextlib.AsyncExitStack) -> Perform:
    """Bind the summarizer agent to the configured model."""
    model = build_model(settings)
    resources.push_async_callback(model.aclose)

    async def perform(task: TaskCommand) -> TaskResult:
        assert isinstance(task, SummarizeTask)  # the worker filters by task type
        return await summarize_memory(task, model)

    return perform


async def serve(stop: asyncio.Event) -> None:
    """Run the summarizer until ``stop`` is set."""
    await serve_worker(stop, "summarizer", SummarizeTask, make_perform)


def main() -> None:
    """``python -m services.summarizer``."""
    configure_logging("summarizer")
    run_until_signalled(serve)
