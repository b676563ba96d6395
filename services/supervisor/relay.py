"""The outbox relay: publishes committed events from its own checkpoint, each workflow's in log
order (a batch's records all queued in the producer, then acknowledged together: about one
round trip to the broker per batch, not one per record).

The event log is the outbox. A command or completion reaches Kafka only after the events that
caused it committed; after a crash the relay resumes from its checkpoint and may publish a few
records again (at-least-once), which is safe because every record's ``ce_id`` is the event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractContextManager

from opentelemetry import context, propagate

from schemas.base import Message
from schemas.events import RecordedEventMessage, TaskScheduled
from schemas.registry import model_for
from schemas.topics import COMPLETIONS, WORKFLOW_EVENTS, task_topic
from services.supervisor.leadership import AlwaysLeader, Lease
from services.supervisor.redrive import PublishedPositions, open_task_commands
from services.supervisor.stream_texts import StreamTexts
from shared.domain import TERMINAL_EVENTS, completion_for, replay
from shared.eventstore import EventStore, RecordedEvent
from shared.runtime.codec import decode_history
from shared.transport import Bus

__all__ = ["EVENT_TYPE_HEADER", "OutboxRelay"]

EVENT_TYPE_HEADER = "agentlog-event-type"

_log = logging.getLogger(__name__)


class OutboxRelay:
    """Follows ``read_all`` and publishes commands, completions and the audit feed."""

    CHECKPOINT = "relay.supervisor"

    def __init__(
        self,
        store: EventStore,
        bus: Bus,
        wakeup: asyncio.Event,
        *,
        poll_interval_s: float = 0.5,
        batch_size: int = 200,
        retry_pause_s: float = 1.0,
        lease: Lease | None = None,
        lease_check_s: float = 2.0,
        trace_scope: Callable[[RecordedEvent], AbstractContextManager[None]] | None = None,
        active: Callable[[], Iterable[str]] = tuple,
        redrive_window_s: float = 60.0,
        checkpoint_every_s: float = 0.5,
    ) -> None:
        """``active`` names the unfinished workflows whose open tasks a re-drive publishes
        again; ``redrive_window_s`` is how far before the broker was last known intact a
        re-drive rewinds (a consumer may not have read what was published just before).
        ``checkpoint_every_s``: the checkpoint is saved at most this often (and when the relay
        stops): a restart then publishes at most that much again, under the same ce_ids."""
        self._store = store
        self._bus = bus
        self._wakeup = wakeup
        self._poll_interval_s = poll_interval_s
        self._batch_size = batch_size
        self._retry_pause_s = retry_pause_s
        self._lease: Lease = lease or AlwaysLeader()
        self._lease_check_s = lease_check_s
        # Around each publish: by default the recorded trace context is restored; tracing
        # wires a span in that context instead (shared.telemetry.tracing).
        self._trace_scope = trace_scope or _recorded_context
        self._active = active
        self._redrive_window_s = redrive_window_s
        self._checkpoint_every_s = checkpoint_every_s
        self._saved = 0
        self._saved_at = -float("inf")
        self._published = PublishedPositions()
        self._texts = StreamTexts(store)
        self._redrive_since: float | None = None
        self.position = 0
        #: How many re-drives this relay has done (tests and status read it).
        self.redrives = 0
        #: Records whose task or completion could not be built from the log, so were skipped.
        self.unpublishable = 0

    @property
    def texts_read(self) -> int:
        """How often a command's referenced values were not among the records read before it,
        so its stream was read from the store (after a restart, or for a forgotten workflow)."""
        return self._texts.reads

    def request_redrive(self, intact_since: float) -> None:
        """The broker forgot what was published after ``intact_since`` (monotonic seconds):
        publish open tasks and the recent past again, from the store (see ``redrive``)."""
        if self._redrive_since is None or intact_since < self._redrive_since:
            self._redrive_since = intact_since
        self._wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Relay while this process holds the lease, until ``stop`` is set."""
        while await self._lease.acquire(stop):
            _log.info("outbox relay leading")
            try:
                await self._relay_while_leading(stop)
            finally:
                await self._save_checkpoint_on_exit()
            if not stop.is_set():
                _log.warning("outbox relay lost its lease; waiting to lead again")

    async def _relay_while_leading(self, stop: asyncio.Event) -> None:
        """Relay batches; a failed batch is retried, never fatal. Returns if the lease is lost."""
        loaded = False
        lease_checked = time.monotonic()
        while not stop.is_set():
            if time.monotonic() - lease_checked > self._lease_check_s:
                if not await self._lease.held():
                    return
                lease_checked = time.monotonic()
            # Clear before reading, not after: a commit that lands while the batch is read
            # sets the event again, so the wait below cannot miss it (a lost wake-up would
            # cost a full poll interval).
            self._wakeup.clear()
            try:
                if not loaded:
                    # Reloaded on every new lease: another leader may have moved it on.
                    self.position = await self._store.load_checkpoint(self.CHECKPOINT)
                    self._saved = self.position
                    # Where leading began: a re-drive goes back no further than this.
                    self._published.mark(time.monotonic(), self.position)
                    loaded = True
                if self._redrive_since is not None:
                    await self._redrive(self._redrive_since)
                relayed = await self.relay_batch()
            except Exception:
                # A dropped database connection or a broker hiccup must not end the supervisor
                # (the relay runs in its task group). Retry from the last record published:
                # records published again keep their ce_id, which consumers dedupe.
                _log.exception("relay failed after position %d; retrying", self.position)
                await self._wait(stop, self._retry_pause_s)
                continue
            if relayed == self._batch_size:
                continue  # more may be waiting; a shorter batch read up to the head
            # Anything committed since the read above has set the wake-up already. A checkpoint
            # left unsaved by the throttle is saved when it is due, busy or not.
            timeout = self._poll_interval_s
            if self._saved < self.position:
                due = self._saved_at + self._checkpoint_every_s - time.monotonic()
                timeout = max(0.0, min(timeout, due))
            await self._wait(stop, timeout, self._wakeup)

    @staticmethod
    async def _wait(stop: asyncio.Event, timeout_s: float, *more: asyncio.Event) -> None:
        """Sleep up to ``timeout_s``, waking early when ``stop`` or any of ``more`` is set."""
        waiters = [asyncio.ensure_future(e.wait()) for e in (stop, *more)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED), timeout_s
            )
        for waiter in waiters:
            waiter.cancel()

    async def relay_batch(self) -> int:
        """Publish the next batch after the checkpoint; returns how many events it relayed."""
        records = await self._store.read_all(self.position, self._batch_size)
        by_workflow: dict[str, list[RecordedEvent]] = {}
        for record in records:
            by_workflow.setdefault(record.stream_id, []).append(record)
        # Each workflow's records queued in log order (its consumers see them in order);
        # different workflows at once. A failure ends the batch unmoved: it is published again
        # from the start, every record under its own ce_id.
        async with asyncio.TaskGroup() as group:
            for own in by_workflow.values():
                group.create_task(self._publish_in_order(own))
        if records:
            self.position = records[-1].position
            self._published.mark(time.monotonic(), self.position)
        if time.monotonic() - self._saved_at >= self._checkpoint_every_s:
            await self._save_checkpoint()
        return len(records)

    async def _save_checkpoint(self) -> None:
        # One write per interval, not per batch: at a few workflows in flight the relay wakes
        # for every decision, and a save each time was a database round trip per decision.
        if self.position > self._saved:
            await self._store.save_checkpoint(self.CHECKPOINT, self.position)
            self._saved = self.position
        self._saved_at = time.monotonic()

    async def _save_checkpoint_on_exit(self) -> None:
        """Save what was published before the relay stops leading (best effort: a failure only
        means publishing those records again after the restart)."""
        try:
            await self._save_checkpoint()
        except Exception:
            _log.warning("relay checkpoint not saved at stop (position %d)", self.position)

    async def _publish_in_order(self, records: list[RecordedEvent]) -> None:
        # Queued one after another (each partition keeps that order), acknowledged together:
        # a workflow's records cost one round trip to the broker, not one each.
        acks: list[Awaitable[object]] = []
        try:
            for record in records:
                with self._trace_scope(record):
                    acks += await self._queue(record)
        except Exception:
            # What was queued goes out anyway; wait for its answers before failing the batch,
            # so none is left unobserved (the batch is published again, under the same ce_ids).
            await asyncio.gather(*acks, return_exceptions=True)
            raise
        await _acknowledged(acks)

    async def _redrive(self, intact_since: float) -> None:
        commands = await open_task_commands(self._store, list(self._active()))
        for record in commands:
            await self._publish(record)
        rewind_to = self._published.before(intact_since - self._redrive_window_s, self.position)
        _log.warning(
            "re-drove %d open task(s) from the event store; publishing again from position %d"
            " (was %d)",
            len(commands),
            rewind_to,
            self.position,
        )
        self.position = min(self.position, rewind_to)
        self._redrive_since = None
        self.redrives += 1

    async def _publish(self, record: RecordedEvent) -> None:
        # Publish inside the trace that recorded the event, so the hop joins the same trace.
        with self._trace_scope(record):
            await _acknowledged(await self._queue(record))

    async def _queue(self, record: RecordedEvent) -> list[Awaitable[object]]:
        """Queue what ``record`` publishes, in order; the acknowledgements to await."""
        workflow_id = record.stream_id
        acks: list[Awaitable[object]] = []
        task = await self._task_of(record) if record.type == TaskScheduled.event_type() else None
        self._texts.observe(record)
        if task is not None:
            # The command first: the worker waits for it, the audit feed's readers do not.
            agent, command = task
            command_ack = await self._bus.publish_queued(
                task_topic(agent),
                command,
                key=workflow_id,
                ce_id=record.event_id,
                subject=workflow_id,
            )
            acks.append(command_ack)
        audit_ack = await self._bus.publish_queued(
            WORKFLOW_EVENTS,
            RecordedEventMessage(
                workflow_id=workflow_id,
                position=record.position,
                version=record.version,
                type=record.type,
                schema_version=record.schema_version,
                data=record.data,
                metadata=record.metadata,
                recorded_at=record.recorded_at,
            ),
            key=workflow_id,
            ce_id=f"{record.event_id}:audit",
            subject=workflow_id,
            # Lets a follower that needs few event types skip the rest unread (it is only a
            # hint: what it does pick is still verified and read from the signed payload).
            headers={EVENT_TYPE_HEADER: record.type.encode()},
        )
        acks.append(audit_ack)
        if record.type not in TERMINAL_EVENTS:
            return acks
        records = await self._store.read(workflow_id, up_to_version=record.version)
        try:
            history = decode_history(records)
        except ValueError as exc:
            self._unpublishable(record, "a completion", exc)
            return acks
        ids = {r.version: r.event_id for r in records}
        # A re-run's completion names the ce_id of the one it supersedes: that completion was
        # published under its terminal event's id.
        completion = completion_for(replay(workflow_id, history), history[-1], ids.get)
        if completion is not None:
            acks.append(
                await self._bus.publish_queued(
                    COMPLETIONS,
                    completion,
                    key=workflow_id,
                    ce_id=record.event_id,
                    subject=workflow_id,
                )
            )
            _log.info("workflow %s finished: %s", workflow_id, completion.outcome)
        return acks

    async def _task_of(self, record: RecordedEvent) -> tuple[str, Message] | None:
        """The agent and command a ``TaskScheduled`` record sends; None if it cannot be built."""
        try:
            scheduled = TaskScheduled.model_validate(record.data, strict=False)
            command = model_for(scheduled.command_type).model_validate(
                await self._texts.command(record), strict=False
            )
        except ValueError as exc:  # a ValidationError, an unknown type, an unresolved text
            self._unpublishable(record, "a task", exc)
            return None
        return scheduled.agent, command

    def _unpublishable(self, record: RecordedEvent, what: str, exc: ValueError) -> None:
        # Skipped, not retried: it would fail the same way every time, and a relay stuck on
        # one record stops every workflow behind it. A task that is never sent fails at its
        # deadline, so the supervisor retries it or fails the workflow: nothing waits forever.
        self.unpublishable += 1
        _log.error(
            "relay skipped %s it cannot build from %s %s (workflow %s, version %d, position %d):"
            " %s",
            what,
            record.type,
            record.event_id,
            record.stream_id,
            record.version,
            record.position,
            exc,
        )


async def _acknowledged(acks: list[Awaitable[object]]) -> None:
    """Wait for every acknowledgement; raise the first failure (after all have answered)."""
    outcomes = await asyncio.gather(*acks, return_exceptions=True)
    failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
    if failure is not None:
        raise failure


@contextlib.contextmanager
def _recorded_context(record: RecordedEvent) -> Iterator[None]:
    carrier = record.metadata.get("trace_context") or {}
    token = context.attach(propagate.extract(carrier))
    try:
        yield
    finally:
        context.detach(token)
