"""The writer's composition root: drafts and revises reports through the model port."""

from __future__ import annotations

import asyncio
import contextlib

from schemas.messages import TaskCommand, TaskResult, WriteTask
from shared.agents.writer import write_draft
from shared.llm.factory import build_model
from shared.runtime.lifecycle import configure_logging, run_until_signalled
from shared.runtime.worker import Perform
from shared.runtime.worker_main import serve_worker
from shared.settings import Settings

__all__ = ["main", "make_perform"]


async def make_perform(settings: Settings, resources: contextlib.AsyncExitStack) -> Perform:
    """Bind the writer agent to the configured model."""
    model = build_model(settings)
    resources.push_async_callback(model.aclose)

    async def perform(task: TaskCommand) -> TaskResult:
        assert isinstance(task, WriteTask)  # the worker filters by task type
        return await write_draft(task, model)

    return perform


async def serve(stop: asyncio.Event) -> None:
    """Run the writer until ``stop`` is set."""
    await serve_worker(stop, "writer", WriteTask, make_perform)


def main() -> None:
    """``python -m services.writer``."""
    configure_logging("writer")
    run_until_signalled(serve)
