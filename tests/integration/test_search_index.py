"""PostgresCorpusIndex against a real Postgres: ranking, incremental re-index, unicode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from schemas.messages import SearchTask
from services.search.index import PostgresCorpusIndex, answer_search
from tests.conftest import StackInfo

pytestmark = pytest.mark.integration

DESIGN = """# Event store

Every workflow is an append-only stream of events in Postgres. Appends check the expected
stream version, so two writers never overwrite each other.

## Kafka topics

Services exchange commands and results over Kafka topics, keyed by workflow id so that one
workflow's messages keep their order within a partition.
"""

OPERATIONS = """# Operations

Backups are taken nightly with pg_dump. Restores are rehearsed every quarter.
"""


@pytest.fixture(scope="module")
async def pool(stack_info: StackInfo) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on the session's database."""
    pool = await asyncpg.create_pool(stack_info.database_url, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def index(pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[PostgresCorpusIndex]:
    """An index over a fresh docs folder, in a fresh schema dropped afterwards."""
    schema = f"corpus_test_{uuid4().hex[:12]}"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "design.md").write_text(DESIGN, encoding="utf-8")
    (docs / "ops").mkdir()
    (docs / "ops" / "runbook.txt").write_text(OPERATIONS, encoding="utf-8")
    index = PostgresCorpusIndex(pool, docs, schema=schema)
    await index.ensure_schema()
    try:
        yield index
    finally:
        await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


async def test_query_ranks_the_matching_passage_first(index: PostgresCorpusIndex) -> None:
    """A query about partition order ranks the Kafka-topics passage first, titled by its heading."""
    stats = await index.sync()
    assert (stats.files_seen, stats.files_indexed, stats.files_removed) == (2, 2, 0)
    assert stats.passages_total == stats.passages_written == 3

    results = await index.search("kafka partition order", 5)

    assert results[0].source_id == "docs/design.md#2"
    assert results[0].title == "Kafka topics"
    assert "keyed by workflow id" in results[0].text
    assert results[0].score > 0
    # The headline marks the matched words in context.
    assert "**partition" in results[0].snippet.lower()


async def test_results_are_ordered_by_rank_then_source_id(index: PostgresCorpusIndex) -> None:
    """Scores never increase down the list, and equal scores are ordered by source id."""
    await index.sync()
    results = await index.search("workflow", 10)
    keys = [(-p.score, p.source_id) for p in results]
    assert len(results) >= 2
    assert keys == sorted(keys)


async def test_any_word_fallback_when_no_passage_has_all_words(index: PostgresCorpusIndex) -> None:
    """A query whose words never co-occur still finds passages holding some of them."""
    await index.sync()
    assert await index.search('"backups" "kafka"', 5) != []
    results = await index.search("backups zeppelin", 5)
    assert [p.source_id for p in results] == ["docs/ops/runbook.txt#1"]


async def test_resync_without_changes_is_a_no_op(index: PostgresCorpusIndex) -> None:
    """A second sync of an unchanged folder re-indexes nothing and keeps every passage."""
    await index.sync()
    assert not await index.needs_sync()
    again = await index.sync()
    assert (again.files_indexed, again.files_removed, again.passages_written) == (0, 0, 0)
    assert again.passages_total == 3


async def test_modified_added_and_deleted_files_are_reindexed(index: PostgresCorpusIndex) -> None:
    """Changes to the folder are detected and only the affected files' passages change."""
    await index.sync()
    docs = index.docs_dir
    (docs / "design.md").write_text(
        "# Event store\n\nSnapshots every hundred events keep replays short and cheap.\n",
        encoding="utf-8",
    )
    (docs / "glossary.md").write_text("# Glossary\n\nA saga coordinates a long workflow.\n")
    (docs / "ops" / "runbook.txt").unlink()
    assert await index.needs_sync()

    stats = await index.sync()

    assert (stats.files_seen, stats.files_indexed, stats.files_removed) == (2, 2, 1)
    assert [p.source_id for p in await index.search("snapshots replays", 5)] == ["docs/design.md#1"]
    assert await index.search("partition", 5) == []
    assert await index.search("backups", 5) == []
    assert [p.source_id for p in await index.search("saga", 5)] == ["docs/glossary.md#1"]


async def test_unicode_text_is_indexed_and_found(index: PostgresCorpusIndex) -> None:
    """Non-ASCII words are searchable and come back unchanged."""
    (index.docs_dir / "café.md").write_text(
        "# Zürich café notes\n\n"
        "Die Grüße aus München: naïve façade, Ærøskøbing, 東京 and emoji 🚀.\n",
        encoding="utf-8",
    )
    await index.sync()
    results = await index.search("München façade", 3)
    assert results[0].source_id == "docs/café.md#1"
    assert results[0].title == "Zürich café notes"
    assert "東京" in results[0].text
    assert "🚀" in results[0].text


async def test_operator_syntax_in_queries_is_harmless(index: PostgresCorpusIndex) -> None:
    """Quotes, minus signs and tsquery operators in a query neither fail nor inject."""
    await index.sync()
    for query in ["kafka & | ! ( ) :*", '"event store" -kafka', "'; DROP TABLE x; --", ""]:
        assert isinstance(await index.search(query, 3), list)
    excluded = await index.search('"event store" -kafka', 5)
    assert excluded
    assert all("Kafka" not in p.text for p in excluded)


async def test_concurrent_indexers_share_one_index(
    pool: asyncpg.Pool, index: PostgresCorpusIndex
) -> None:
    """Two indexers (say, two search workers) racing on schema and sync leave one clean index."""
    schema = index.schema
    twin = PostgresCorpusIndex(pool, index.docs_dir, schema=schema)
    await asyncio.gather(index.ensure_schema(), twin.ensure_schema())
    first, second = await asyncio.gather(index.sync(), twin.sync())
    assert first.files_indexed + second.files_indexed == 2
    assert first.passages_total == second.passages_total == 3


async def test_answer_search_wraps_results_with_provenance(index: PostgresCorpusIndex) -> None:
    """answer_search returns a SearchResult for the task with Postgres FTS provenance."""
    await index.sync()
    task = SearchTask(
        workflow_id="wf-search-1",
        task_id="task-1",
        attempt=1,
        deadline=datetime.now(UTC) + timedelta(minutes=1),
        query="append-only stream of events",
        limit=2,
    )
    result = await answer_search(task, index)
    assert (result.workflow_id, result.task_id, result.attempt) == ("wf-search-1", "task-1", 1)
    assert result.passages[0].source_id == "docs/design.md#1"
    assert len(result.passages) <= 2
    assert result.provenance.provider == "postgres-fts"
    assert result.provenance.model == "ts_rank_cd"
