"""The critic's composition root: judges drafts against an explicit rubric."""

from __future__ import annotations

import asyncio
import contextlib

from schemas.messages import CritiqueTask, TaskCommand, TaskResult
from shared.agents.critic import critique_draft
from shared.llm.factory import build_model
from shared.runtime.lifecycle import configure_logging, run_until_signalled
from shared.runtime.worker import Perform
from shared.runtime.worker_main import serve_worker
from shared.settings import Settings

__all__ = ["main", "make_perform"]


async def make_perform(settings: Settings, resources: contextlib.AsyncExitStack) -> Perform:
    """Bind the critic agent to the configured model."""
    model = build_model(settings)
    resources.push_async_callback(model.aclose)

    async def perform(task: TaskCommand) -> TaskResult:
        assert isinstance(task, CritiqueTask)  # the worker filters by task type
        return await critique_draft(task, model)

    return perform


async def serve(stop: asyncio.Event) -> None:
    """Run the critic until ``stop`` is set."""
    await serve_worker(stop, "critic", CritiqueTask, make_perform)


def main() -> None:
    """``python -m services.critic``."""
    configure_logging("critic")
    run_until_signalled(serve)
