"""Wake-ups when any process appends: Postgres LISTEN/NOTIFY on a connection of its own.

``append_events`` (schema.sql) notifies the channel ``agentlog_appended`` in every transaction
that adds events, with ``<quoted schema>:<last position>:<writer's application_name>`` and, on
a line of its own, the stream id's sha256 (hex) as payload; Postgres delivers it only if the
transaction commits, after it commits. A follower in this process (the outbox relay) already
wakes on its own supervisor's appends; this wakes it for every other writer too — another
supervisor, a CLI rollback — instead of at its next poll. ``on_stream`` gets each appended
stream's digest: ``PostgresEventStore.watch`` wakes the readers of that stream only.

Notifications are a hint, never the record: a follower still reads the log from its
checkpoint, and keeps its poll as the floor. ``wake`` gets the position appended up to (so a
follower that got that far already need not read again), or ``None`` after each (re)connect,
since anything sent while no one listened is gone. Appends by sessions named ``ignore`` (the
process's own pool, whose follower it wakes in process already) are skipped: woken by those
too, a relay would read the log twice per decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable

import asyncpg

__all__ = ["APPLICATION_NAME", "CHANNEL", "AppendNotifications", "stream_digest"]

CHANNEL = "agentlog_appended"
#: How the listening session shows in ``pg_stat_activity``.
APPLICATION_NAME = "agentlog-append-notifications"

_log = logging.getLogger(__name__)
# What a lost listening connection raises; asyncpg's InternalClientError included (a session
# the server dropped mid-query can leave the protocol refusing the next one).
_LOST = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


def stream_digest(stream_id: str) -> str:
    """The stream id as a notification names it: sha256 of its UTF-8, in hex (schema.sql)."""
    return hashlib.sha256(stream_id.encode("utf-8")).hexdigest()


class AppendNotifications:
    """Calls ``wake(position)`` whenever events up to ``position`` are appended to ``schema``
    (by any process), and ``wake(None)`` after each (re)connect; ``on_stream(digest)`` too, if
    given, with the appended stream's ``stream_digest``."""

    def __init__(
        self,
        dsn: str,
        wake: Callable[[int | None], None],
        *,
        schema: str = "agentlog",
        ignore: str | None = None,
        on_stream: Callable[[str], None] | None = None,
        check_s: float = 1.0,
        retry_s: float = 1.0,
    ) -> None:
        self._dsn = dsn
        self._wake = wake
        self._prefix = f'"{schema}":'
        self._ignore = ignore
        self._on_stream = on_stream
        self._check_s = check_s
        self._retry_s = retry_s
        #: How many times the listening connection was opened (the tests read it).
        self.connects = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until ``stop`` is set, reconnecting after a lost connection."""
        while not stop.is_set():
            try:
                conn = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": APPLICATION_NAME}
                )
            except _LOST as exc:
                _log.warning("append notifications unavailable: %r", exc)
                await _sleep(stop, self._retry_s)
                continue
            try:
                await conn.add_listener(CHANNEL, self._on_notify)
                self.connects += 1
                self._wake(None)  # what was appended while no one listened
                while not stop.is_set() and not conn.is_closed():
                    await _sleep(stop, self._check_s)
                    # A connection dropped by the server is noticed only when it is used.
                    await conn.fetchval("SELECT 1")
            except _LOST as exc:
                _log.warning("append notifications lost: %r; reconnecting", exc)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=5)

    def _on_notify(self, connection: object, pid: int, channel: str, payload: object) -> None:
        if not isinstance(payload, str) or not payload.startswith(self._prefix):
            return
        head, _, stream = payload[len(self._prefix) :].partition("\n")
        position, _, writer = head.partition(":")
        if self._ignore is not None and writer == self._ignore:
            return
        self._wake(int(position) if position.isdigit() else None)
        if self._on_stream is not None and stream:
            self._on_stream(stream)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
