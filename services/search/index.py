"""``PostgresCorpusIndex``: a full-text index of a docs folder, kept in Postgres.

A derived read model: the folder is the truth, the tables are rebuilt from it at will.
``sync`` re-indexes only files whose content hash changed and deletes the passages of removed
files; ``needs_sync`` is a cheap stat-only check (paths, sizes, mtimes) the worker calls before
each search. Passages get a stored ``tsvector`` (English config, title + text) with a GIN index;
``search`` ranks with ``ts_rank_cd`` over ``websearch_to_tsquery``, falling back to an OR of the
query's words when the AND query matches nothing. Ties are ordered by source id.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import asyncpg

from schemas.messages import Passage, Provenance, SearchResult, SearchTask
from services.search.chunking import chunk_document
from shared.eventstore.postgres import CONNECTION_ERRORS
from shared.transport import TransientError

__all__ = [
    "STRATEGY_VERSION",
    "CorpusError",
    "IndexStats",
    "PostgresCorpusIndex",
    "answer_search",
    "check_corpus",
    "corpus_files",
]

STRATEGY_VERSION: Final = "websearch-and-or-fallback/2"
# ts_headline options: a short snippet around the matches, matches marked as Markdown bold.
# Computed only for the rows returned (the subquery limits first): headlines are expensive.
_HEADLINE: Final = "MaxWords=30, MinWords=12, MaxFragments=2, StartSel=**, StopSel=**"
_MAX_SNIPPET_CHARS: Final = 500
_SUFFIXES: Final = (".md", ".txt")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_QUERY_WORD = re.compile(r"[^\W_]+")
_MAX_PATH_CHARS = 400  # source ids are ShortText (500) and end with "#<n>"
_MAX_TEXT_CHARS = 4_000  # Passage.text is Text
_CATALOG_RACE = (
    asyncpg.UniqueViolationError,
    asyncpg.DuplicateSchemaError,
    asyncpg.DuplicateTableError,
    asyncpg.DuplicateObjectError,
)


@dataclass(frozen=True)
class IndexStats:
    """What one ``sync`` did."""

    files_seen: int
    files_indexed: int
    files_removed: int
    passages_written: int
    passages_total: int


def corpus_files(docs_dir: Path) -> list[Path]:
    """The indexable files under ``docs_dir``, sorted; hidden folders and files are skipped."""
    if not docs_dir.is_dir():
        return []
    found = [
        path
        for path in docs_dir.rglob("*")
        if path.suffix.lower() in _SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(docs_dir).parts)
        and len(path.relative_to(docs_dir).as_posix()) <= _MAX_PATH_CHARS
    ]
    return sorted(found, key=lambda p: p.relative_to(docs_dir).as_posix())


class CorpusError(ValueError):
    """The corpus folder is missing or holds nothing to index: every search would be empty."""


def check_corpus(docs_dir: Path) -> int:
    """How many documents ``docs_dir`` holds; raises CorpusError when it has none."""
    fix = "set AGENTLOG_DOCS_DIR to a folder of .md or .txt files"
    if not docs_dir.is_dir():
        raise CorpusError(f"the corpus folder {docs_dir} does not exist ({fix})")
    count = len(corpus_files(docs_dir))
    if count == 0:
        raise CorpusError(f"the corpus folder {docs_dir} holds no .md or .txt files ({fix})")
    return count


def _fingerprint(docs_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in corpus_files(docs_dir):
        stat = path.stat()
        rel = path.relative_to(docs_dir).as_posix()
        digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ctime_ns}\n".encode())
    return digest.hexdigest()


class PostgresCorpusIndex:
    """Full-text search over the ``*.md`` / ``*.txt`` files of one folder."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        docs_dir: Path,
        *,
        schema: str = "agentlog",
        source_prefix: str | None = None,
    ) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema must be a lower-case SQL identifier, not {schema!r}")
        self._pool = pool
        self._docs_dir = docs_dir
        self._schema = schema
        # Source ids read like repository paths ("docs/design.md#3") unless told otherwise.
        self._prefix = f"{docs_dir.name}/" if source_prefix is None else source_prefix
        self._synced_fingerprint: str | None = None
        # Serialises concurrent syncs of this folder, across processes too.
        self._lock_key = f"agentlog.corpus:{schema}"

    @property
    def schema(self) -> str:
        """The Postgres schema holding the index tables."""
        return self._schema

    @property
    def docs_dir(self) -> Path:
        """The folder this index mirrors."""
        return self._docs_dir

    async def ensure_schema(self) -> None:
        """Create the schema, tables and index if missing (idempotent, safe to race)."""
        for attempt in range(3):
            try:
                await self._create_schema()
                return
            except _CATALOG_RACE:
                # Another component (e.g. the event store) created the same schema at the same
                # instant under its own lock; IF NOT EXISTS is not race-free, a retry is.
                if attempt == 2:
                    raise

    async def _create_schema(self) -> None:
        s = self._schema
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._lock_key)
            await conn.execute(
                f"""
                CREATE SCHEMA IF NOT EXISTS {s};
                CREATE TABLE IF NOT EXISTS {s}.corpus_files (
                    path text PRIMARY KEY,
                    content_hash text NOT NULL,
                    indexed_at timestamptz NOT NULL DEFAULT now()
                );
                CREATE TABLE IF NOT EXISTS {s}.corpus_passages (
                    source_id text PRIMARY KEY,
                    path text NOT NULL REFERENCES {s}.corpus_files (path) ON DELETE CASCADE,
                    ordinal integer NOT NULL,
                    title text NOT NULL,
                    body text NOT NULL,
                    tsv tsvector GENERATED ALWAYS AS
                        (to_tsvector('english', title || ' ' || body)) STORED
                );
                CREATE INDEX IF NOT EXISTS corpus_passages_tsv_idx
                    ON {s}.corpus_passages USING gin (tsv);
                CREATE INDEX IF NOT EXISTS corpus_passages_path_idx
                    ON {s}.corpus_passages (path);
                """
            )

    async def needs_sync(self) -> bool:
        """Whether the folder changed (by path, size or mtime) since this index last synced it."""
        if self._synced_fingerprint is None:
            return True
        return await asyncio.to_thread(_fingerprint, self._docs_dir) != self._synced_fingerprint

    async def sync(self) -> IndexStats:
        """Bring the index up to date with the folder; unchanged files are not touched."""
        fingerprint, documents = await asyncio.to_thread(self._read_folder)
        s = self._schema
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._lock_key)
            rows = await conn.fetch(f"SELECT path, content_hash FROM {s}.corpus_files")
            stored = {row["path"]: row["content_hash"] for row in rows}
            removed = sorted(set(stored) - set(documents))
            if removed:
                await conn.execute(
                    f"DELETE FROM {s}.corpus_files WHERE path = ANY($1::text[])", removed
                )
            changed = [
                path for path, (digest, _) in documents.items() if stored.get(path) != digest
            ]
            written = 0
            for path in changed:
                digest, text = documents[path]
                written += await self._write_file(conn, path, digest, text)
            total = await conn.fetchval(f"SELECT count(*) FROM {s}.corpus_passages")
        self._synced_fingerprint = fingerprint
        return IndexStats(len(documents), len(changed), len(removed), written, int(total))

    def _read_folder(self) -> tuple[str, dict[str, tuple[str, str]]]:
        """Fingerprint first, then contents: a change in between is caught by the next check."""
        fingerprint = _fingerprint(self._docs_dir)
        documents: dict[str, tuple[str, str]] = {}
        for path in corpus_files(self._docs_dir):
            data = path.read_bytes()
            rel = path.relative_to(self._docs_dir).as_posix()
            documents[rel] = (hashlib.sha256(data).hexdigest(), data.decode("utf-8", "replace"))
        return fingerprint, documents

    async def _write_file(self, conn: asyncpg.Connection, path: str, digest: str, text: str) -> int:
        s = self._schema
        await conn.execute(
            f"""
            INSERT INTO {s}.corpus_files (path, content_hash) VALUES ($1, $2)
            ON CONFLICT (path)
            DO UPDATE SET content_hash = EXCLUDED.content_hash, indexed_at = now()
            """,
            path,
            digest,
        )
        await conn.execute(f"DELETE FROM {s}.corpus_passages WHERE path = $1", path)
        # Postgres text cannot hold NUL; a stray one in a text file must not fail the sync.
        chunks = chunk_document(text.replace("\x00", ""), default_title=Path(path).stem)
        await conn.executemany(
            f"INSERT INTO {s}.corpus_passages (source_id, path, ordinal, title, body) "
            "VALUES ($1, $2, $3, $4, $5)",
            [
                (f"{self._prefix}{path}#{c.ordinal}", path, c.ordinal, c.title, c.text)
                for c in chunks
            ],
        )
        return len(chunks)

    async def search(self, query: str, limit: int) -> list[Passage]:
        """The best passages for ``query``: all-words match first, any-word match if none.

        Raises ``TransientError`` when the database cannot be reached: an outage is not the
        task's fault, and the worker waits it out instead of spending the task's attempts.
        """
        try:
            return await self._search(query, limit)
        except CONNECTION_ERRORS as exc:
            raise TransientError(f"search index unavailable: {type(exc).__name__}: {exc}") from exc

    async def _search(self, query: str, limit: int) -> list[Passage]:
        s = self._schema
        sql = f"""
            SELECT source_id, title, body, rank,
                   ts_headline('english', body, q, $3) AS snippet
            FROM (
                SELECT source_id, title, body, q, ts_rank_cd(tsv, q) AS rank
                FROM {s}.corpus_passages, {{query}} AS q
                WHERE tsv @@ q
                ORDER BY rank DESC, source_id
                LIMIT $2
            ) AS best
            ORDER BY rank DESC, source_id
        """
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                sql.format(query="websearch_to_tsquery('english', $1)"), query, limit, _HEADLINE
            )
            words = _QUERY_WORD.findall(query)
            if not rows and len(words) > 1:
                # Words only, so the OR expression cannot smuggle tsquery operators in.
                any_word = " | ".join(words)
                rows = await conn.fetch(
                    sql.format(query="to_tsquery('english', $1)"), any_word, limit, _HEADLINE
                )
        return [_passage(row) for row in rows]


def _passage(row: asyncpg.Record) -> Passage:
    return Passage(
        source_id=row["source_id"],
        title=row["title"],
        text=row["body"][:_MAX_TEXT_CHARS],
        score=float(row["rank"]),
        snippet=" ".join(row["snippet"].split())[:_MAX_SNIPPET_CHARS],
    )


async def answer_search(task: SearchTask, index: PostgresCorpusIndex) -> SearchResult:
    """A search task's result: ranked passages with the index's provenance."""
    passages: Sequence[Passage] = await index.search(task.query, task.limit)
    return SearchResult(
        workflow_id=task.workflow_id,
        task_id=task.task_id,
        attempt=task.attempt,
        provenance=Provenance(
            provider="postgres-fts",
            model="ts_rank_cd",
            strategy_version=STRATEGY_VERSION,
            tokens_estimated=False,
        ),
        passages=list(passages),
    )
