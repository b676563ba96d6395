"""The search agent's composition root: a Postgres full-text index over the operator's corpus."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

import asyncpg

from schemas.messages import SearchTask, TaskCommand, TaskResult
from services.search.index import CorpusError, PostgresCorpusIndex, answer_search, check_corpus
from shared.runtime.worker import Perform
from shared.runtime.worker_main import ModelWrapper, worker_entrypoint
from shared.settings import Settings

__all__ = ["main", "make_perform"]

_log = logging.getLogger(__name__)


async def make_perform(
    settings: Settings,
    resources: contextlib.AsyncExitStack,
    wrap_model: ModelWrapper | None = None,
    /,
) -> Perform:
    """Open the index, bring it up to date with the corpus folder, and answer from it.

    Raises CorpusError before connecting when the folder is missing or empty: a search agent
    with nothing to search would fail every workflow with "search found no passages". It
    calls no model, so ``wrap_model`` goes unused.
    """
    documents = check_corpus(settings.docs_dir)
    _log.info("search corpus: %s (%d documents)", settings.docs_dir, documents)
    pool = await asyncpg.create_pool(settings.require_database_url(), min_size=1, max_size=4)
    resources.push_async_callback(pool.close)
    index = PostgresCorpusIndex(pool, settings.docs_dir)
    await index.ensure_schema()
    stats = await index.sync()
    _log.info("indexed %s: %s", settings.docs_dir, stats)
    lock = asyncio.Lock()

    async def perform(task: TaskCommand) -> TaskResult:
        assert isinstance(task, SearchTask)  # the worker filters by task type
        async with lock:  # one re-index at a time when the folder changed
            if await index.needs_sync():
                _log.info("corpus changed; re-indexed: %s", await index.sync())
        return await answer_search(task, index)

    return perform


_serve = worker_entrypoint("search", SearchTask, make_perform)


def main() -> None:
    """``python -m services.search``; refuses to start without a corpus (one line, exit 2)."""
    try:
        _serve()
    except CorpusError as exc:
        print(f"error: search cannot start: {exc}", file=sys.stderr)
        sys.exit(2)
