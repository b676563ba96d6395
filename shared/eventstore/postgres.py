"""The production event store: PostgreSQL through an asyncpg pool.

The schema, the append-only trigger and the ``append_events`` function live in ``schema.sql``;
its header comments explain why a follower of ``read_all`` never skips an event. Each append is
one call of that function: one round trip, one transaction, all events or none.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import re
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, ParamSpec, TypeVar

import asyncpg

from shared.eventstore._codec import (
    check_append,
    check_text,
    decode_json,
    encode_events,
    event_digests,
)
from shared.eventstore.notifications import AppendNotifications, stream_digest
from shared.eventstore.port import (
    AlreadyProcessedError,
    ConcurrencyConflictError,
    EventStore,
    EventStoreError,
    NewEvent,
    RecordedEvent,
    StoreUnavailableError,
    StreamSummary,
    Tracking,
)

__all__ = ["CONNECTION_ERRORS", "PostgresEventStore"]

# SQLSTATEs raised by schema.sql (class "AL" is not used by Postgres itself).
_CONFLICT = "AL001"
_ALREADY_PROCESSED = "AL002"
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_COLUMNS = (
    "position, stream_id, version, type, schema_version, event_id, data, metadata, recorded_at,"
    " hash"
)
#: How long a watch waits for the listener to connect, and the last one for it to hang up.
_WATCH_WAIT_S = 2.0
_HEAD_COLUMNS = "stream_id, version, first_type, last_type, created_at, updated_at, last_hash"


# Errors that say "the database is not reachable right now", not "the request was wrong"
# (the search index reads them too).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, incl. connection does not exist
    asyncpg.exceptions.OperatorInterventionError,  # class 57: admin shutdown, cannot connect now
    asyncpg.InterfaceError,  # connection closed / pool closing under us
    asyncpg.InternalClientError,  # protocol state after a dropped connection
)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _unavailable_on_connection_loss(
    method: Callable[_P, Coroutine[Any, Any, _R]],
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Report a lost connection as the port's StoreUnavailableError (retry, don't give up)."""

    @functools.wraps(method)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await method(*args, **kwargs)
        except CONNECTION_ERRORS as exc:
            raise StoreUnavailableError(
                f"event store unavailable: {type(exc).__name__}: {exc}"
            ) from exc

    return wrapper


def _schema_sql(quoted_schema: str) -> str:
    text = resources.files("shared.eventstore").joinpath("schema.sql").read_text("utf-8")
    return text.replace("__SCHEMA__", quoted_schema)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset hook: skip asyncpg's default RESET ALL/UNLISTEN round trip on every release.

    The store never changes session state (no SET, LISTEN, cursors or session-level advisory
    locks), and asyncpg still rolls back any open transaction before calling this; the default
    reset would double the round trips of a single-event append.
    """


def _recorded(row: asyncpg.Record) -> RecordedEvent:
    # Unpacked by position (the order of _COLUMNS), not looked up by name: a thousand-event
    # read spends most of its Python time here, and name lookups were a third of it.
    position, stream_id, version, type_, schema_version, event_id, data, metadata, at, link = row
    return RecordedEvent(
        position,
        stream_id,
        version,
        type_,
        schema_version,
        decode_json(data),
        event_id,
        decode_json(metadata),
        at,
        None if link is None else link.hex(),
    )


def _head(row: asyncpg.Record) -> StreamSummary:
    return StreamSummary(**{**dict(row), "last_hash": _hex(row["last_hash"])})


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


@dataclass
class _Listener:
    """The listening session all of a store's watches share."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    listening: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class PostgresEventStore(EventStore):
    """Event store on PostgreSQL; every table lives in ``schema`` so tests can isolate."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "agentlog",
        pool_min: int = 1,
        pool_max: int = 10,
        application_name: str | None = None,
    ) -> None:
        """``application_name`` names the pool's sessions (``pg_stat_activity``); it also
        travels in each append's notification, so a process can skip its own."""
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema must be a plain SQL identifier, not {schema!r}")
        self._dsn = dsn
        self._schema = schema
        self._pool_min = pool_min
        self._pool_max = pool_max
        self._server_settings = {"application_name": application_name} if application_name else {}
        self._pool: asyncpg.Pool | None = None
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._listener: _Listener | None = None
        s = f'"{schema}"'
        self._append_sql = (
            f"SELECT o_positions, o_recorded_at, o_hashes FROM {s}.append_events"
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        )
        self._read_sql = (
            f"SELECT {_COLUMNS} FROM {s}.events WHERE stream_id = $1 AND version > $2"
            " AND ($3::integer IS NULL OR version <= $3) ORDER BY version"
        )
        # Bounded by settled_position(), which waits for appends in flight (schema.sql).
        self._settled_sql = f"SELECT {s}.settled_position()"
        self._read_all_sql = (
            f"SELECT {_COLUMNS} FROM {s}.events WHERE position > $1 AND position <= $2"
            " ORDER BY position LIMIT $3"
        )
        self._version_sql = f"SELECT version FROM {s}.streams WHERE stream_id = $1"
        self._list_sql = (
            f"SELECT {_HEAD_COLUMNS} FROM {s}.streams ORDER BY last_position DESC LIMIT $1"
        )
        self._head_sql = f"SELECT {_HEAD_COLUMNS} FROM {s}.streams WHERE stream_id = $1"
        self._heads_sql = (
            f'SELECT {_HEAD_COLUMNS} FROM {s}.streams WHERE stream_id COLLATE "C" > $1'
            ' ORDER BY stream_id COLLATE "C" LIMIT $2'
        )
        # LIKE with an explicit escape character: ids may contain "_" (a LIKE wildcard).
        self._find_sql = (
            f"SELECT stream_id FROM {s}.streams WHERE stream_id LIKE $1 || '%' ESCAPE '\\'"
            " ORDER BY stream_id LIMIT $2"
        )
        self._processed_sql = (
            f"SELECT EXISTS (SELECT 1 FROM {s}.tracking WHERE consumer = $1 AND key = $2)"
        )
        self._load_sql = f"SELECT position FROM {s}.checkpoints WHERE name = $1"
        # GREATEST: a late or replayed save must not move a follower backwards.
        self._save_sql = (
            f"INSERT INTO {s}.checkpoints AS c (name, position, updated_at)"
            " VALUES ($1, $2, clock_timestamp()) ON CONFLICT (name) DO UPDATE"
            " SET position = GREATEST(c.position, excluded.position),"
            " updated_at = excluded.updated_at"
        )

    @property
    def schema(self) -> str:
        """The Postgres schema holding this store's tables."""
        return self._schema

    async def start(self) -> None:
        """Open the pool and create the schema if missing; safe when processes start together."""
        if self._pool is not None:
            return
        pool = await asyncpg.create_pool(
            self._dsn,
            min_size=self._pool_min,
            max_size=self._pool_max,
            reset=_keep_session,
            server_settings=self._server_settings,
        )
        try:
            async with pool.acquire() as conn:
                await self._install_schema(conn)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def _install_schema(self, conn: asyncpg.Connection) -> None:
        """Run schema.sql unless this exact version is installed already.

        Skipping matters: its CREATE OR REPLACE of the trigger and of ``append_events`` lock the
        events table and the function, and deadlocked with live appenders (which held the
        function and waited for the table); any lock it waits for stalls every writer behind
        it. A process starting next to running writers must not touch them, so the installed
        version is recorded and checked first.
        """
        sql = _schema_sql(f'"{self._schema}"')
        digest = hashlib.sha256(sql.encode()).hexdigest()
        if await self._installed_digest(conn) == digest:
            return
        async with conn.transaction():
            # CREATE ... IF NOT EXISTS is not race-free between sessions; the lock is.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"agentlog.eventstore.schema:{self._schema}",
            )
            if await self._installed_digest(conn) == digest:
                return  # another process installed it while this one waited
            await conn.execute(sql)
            await conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{self._schema}".store_schema ('
                " singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),"
                " sql_sha256 text NOT NULL, installed_at timestamptz NOT NULL DEFAULT now())"
            )
            await conn.execute(
                f'INSERT INTO "{self._schema}".store_schema (sql_sha256) VALUES ($1)'
                " ON CONFLICT (singleton) DO UPDATE"
                " SET sql_sha256 = excluded.sql_sha256, installed_at = now()",
                digest,
            )

    async def _installed_digest(self, conn: asyncpg.Connection) -> str | None:
        table = f'"{self._schema}".store_schema'
        if await conn.fetchval("SELECT to_regclass($1)", table) is None:
            return None
        digest: str | None = await conn.fetchval(f"SELECT sql_sha256 FROM {table}")
        return digest

    async def stop(self) -> None:
        """Close the pool, waiting for connections in use to be released, and stop listening."""
        await self._stop_listening()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @property
    def _ready(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PostgresEventStore is not started")
        return self._pool

    @_unavailable_on_connection_loss
    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        tracking: Tracking | None = None,
    ) -> list[RecordedEvent]:
        """Append all events or none (see the port for the errors)."""
        async with self._ready.acquire() as conn:
            return await self._append_with(conn, stream_id, events, expected_version, tracking)

    async def _append_with(
        self,
        conn: asyncpg.Connection,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        tracking: Tracking | None,
    ) -> list[RecordedEvent]:
        """Append on ``conn``; inside a caller's transaction the lock lasts until its commit."""
        check_append(stream_id, events, expected_version, tracking)
        data, metadata = encode_events(events)
        # Decoded once: hashed as verify will see them, then handed back in the result.
        decoded = [(decode_json(d), decode_json(m)) for d, m in zip(data, metadata, strict=True)]
        digests = event_digests(stream_id, expected_version, events, decoded)
        try:
            row = await conn.fetchrow(
                self._append_sql,
                stream_id,
                expected_version,
                tracking.consumer if tracking else None,
                tracking.key if tracking else None,
                [e.type for e in events],
                [e.schema_version for e in events],
                [e.event_id for e in events],
                data,
                metadata,
                digests,
            )
        except asyncpg.PostgresError as exc:
            error = self._translate(exc, stream_id, expected_version, tracking)
            if error is None:
                raise
            raise error from exc
        assert row is not None  # the function always returns one row
        return [
            RecordedEvent(
                position=position,
                stream_id=stream_id,
                version=expected_version + i,
                type=e.type,
                schema_version=e.schema_version,
                data=d,
                event_id=e.event_id,
                metadata=m,
                recorded_at=row["o_recorded_at"],
                hash=link.hex(),
            )
            for i, (e, (d, m), position, link) in enumerate(
                zip(events, decoded, row["o_positions"], row["o_hashes"], strict=True), start=1
            )
        ]

    @staticmethod
    def _translate(
        exc: asyncpg.PostgresError,
        stream_id: str,
        expected_version: int,
        tracking: Tracking | None,
    ) -> EventStoreError | None:
        """The port's error for a database error from append_events, if it has one."""
        sqlstate = exc.sqlstate
        if sqlstate == _ALREADY_PROCESSED and tracking is not None:
            return AlreadyProcessedError(tracking.consumer, tracking.key)
        if sqlstate == _CONFLICT:
            return ConcurrencyConflictError(stream_id, expected_version, int(exc.detail or 0))
        if isinstance(exc, asyncpg.UniqueViolationError) and "event_id" in str(exc.constraint_name):
            return EventStoreError(f"an event id in this batch is already recorded: {exc.detail}")
        return None

    @_unavailable_on_connection_loss
    async def read(
        self, stream_id: str, *, after_version: int = 0, up_to_version: int | None = None
    ) -> list[RecordedEvent]:
        """The stream's events in version order, optionally bounded."""
        check_text("stream_id", stream_id)
        rows = await self._ready.fetch(self._read_sql, stream_id, after_version, up_to_version)
        return [_recorded(r) for r in rows]

    @_unavailable_on_connection_loss
    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Every stream's events in commit order (= position order, see schema.sql)."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, not {limit}")
        async with self._ready.acquire() as conn:
            settled: int = await conn.fetchval(self._settled_sql)
            if settled <= after_position:
                return []
            rows = await conn.fetch(self._read_all_sql, after_position, settled, limit)
        return [_recorded(r) for r in rows]

    @_unavailable_on_connection_loss
    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 when it does not exist)."""
        check_text("stream_id", stream_id)
        version: Any = await self._ready.fetchval(self._version_sql, stream_id)
        return int(version or 0)

    @_unavailable_on_connection_loss
    async def list_streams(self, limit: int = 50) -> list[StreamSummary]:
        """Streams, most recently appended to first."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, not {limit}")
        rows = await self._ready.fetch(self._list_sql, limit)
        return [_head(r) for r in rows]

    @_unavailable_on_connection_loss
    async def stream_head(self, stream_id: str) -> StreamSummary | None:
        """The stream's head (None when it does not exist)."""
        check_text("stream_id", stream_id)
        row = await self._ready.fetchrow(self._head_sql, stream_id)
        return None if row is None else _head(row)

    @_unavailable_on_connection_loss
    async def stream_heads(self, after: str = "", limit: int = 1000) -> list[StreamSummary]:
        """Up to ``limit`` heads of streams whose id sorts after ``after``, in code-point order."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, not {limit}")
        if after:
            check_text("after", after)
        rows = await self._ready.fetch(self._heads_sql, after, limit)
        return [_head(r) for r in rows]

    @_unavailable_on_connection_loss
    async def find_streams(self, prefix: str, limit: int = 2) -> list[str]:
        """Up to ``limit`` stream ids starting with ``prefix``, in id order."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, not {limit}")
        check_text("prefix", prefix)
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = await self._ready.fetch(self._find_sql, escaped, limit)
        return [r["stream_id"] for r in rows]

    @contextlib.asynccontextmanager
    async def watch(self, stream_id: str) -> AsyncIterator[asyncio.Event]:
        """Set by every committed append to ``stream_id``, from any process.

        All of a store's watches share one listening session (``AppendNotifications``), opened
        by the first and closed with the last, so a client waiting on many workflows holds one
        extra connection, not one per workflow. Entered once it listens.
        """
        check_text("stream_id", stream_id)
        digest = stream_digest(stream_id)
        appended = asyncio.Event()
        appended.set()
        self._watchers.setdefault(digest, set()).add(appended)
        try:
            listener = self._listener or self._listen()
            # Bounded: a listener that cannot connect leaves the reader its poll.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(listener.listening.wait(), _WATCH_WAIT_S)
            yield appended
        finally:
            watchers = self._watchers.get(digest, set())
            watchers.discard(appended)
            if not watchers:
                self._watchers.pop(digest, None)
            if not self._watchers:
                await self._stop_listening()

    def _listen(self) -> _Listener:
        listener = _Listener()

        def wake(position: int | None) -> None:
            if position is None:  # (re)connected: what was appended meanwhile went unseen
                listener.listening.set()
                for watchers in self._watchers.values():
                    for appended in watchers:
                        appended.set()

        def on_stream(digest: str) -> None:
            for appended in self._watchers.get(digest, ()):
                appended.set()

        notifications = AppendNotifications(
            self._dsn, wake, schema=self._schema, on_stream=on_stream
        )
        listener.task = asyncio.create_task(notifications.run(listener.stop))
        self._listener = listener
        return listener

    async def _stop_listening(self) -> None:
        # Detached first: a watch entering meanwhile starts a listener of its own.
        listener, self._listener = self._listener, None
        if listener is None or listener.task is None:
            return
        listener.stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listener.task, _WATCH_WAIT_S)

    @_unavailable_on_connection_loss
    async def is_processed(self, tracking: Tracking) -> bool:
        """Whether the tracking key was recorded."""
        check_text("tracking.consumer", tracking.consumer)
        check_text("tracking.key", tracking.key)
        found: Any = await self._ready.fetchval(
            self._processed_sql, tracking.consumer, tracking.key
        )
        return bool(found)

    @_unavailable_on_connection_loss
    async def load_checkpoint(self, name: str) -> int:
        """A follower's last processed global position (0 when none)."""
        check_text("checkpoint name", name)
        position: Any = await self._ready.fetchval(self._load_sql, name)
        return int(position or 0)

    @_unavailable_on_connection_loss
    async def save_checkpoint(self, name: str, position: int) -> None:
        """Record a follower's progress; a lower position than the stored one is ignored."""
        check_text("checkpoint name", name)
        if position < 0:
            raise ValueError(f"position must be >= 0, not {position}")
        await self._ready.execute(self._save_sql, name, position)
