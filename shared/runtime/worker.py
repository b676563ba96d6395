"""The runtime every worker agent shares: take a task, do it, publish the result.

Workers keep no state of their own. A redelivered task is simply done again: results carry a
``ce_id`` derived from (workflow, task, attempt), and the supervisor records that key in the
same transaction as the result's events, so a duplicate result changes nothing.

A failed task is answered with a ``TaskFailure`` whose error text is redacted (it is
published and stored). An error's ``retryable`` attribute (``ModelError``, ``UnknownPromptError``)
decides whether the supervisor tries again; a retryable ``ModelError`` that carries the
provider's ``retry_after_s`` is reported only after that wait (never past the task's
deadline), so the supervisor's next attempt does not hit a rate-limited provider at once. A
``ModelError`` that says what the failed call used (``provenance``) has it recorded: budgets
count failed attempts too.

The kill-switch reaches work in flight: each worker also follows ``agentlog.workflow-events``
(the supervisor's signed audit feed) and, when a workflow is cancelled, fails, completes or is
rolled back, cancels the ``perform`` still running for it and publishes nothing for that task.
Only tasks scheduled before the event are stopped: a task id ends in ``-v<N>``, the stream
version of the TaskScheduled event that created it (see ``shared.domain.scheduling``), and the
event's own version must be greater. A re-run scheduled after a rollback is never hit by the
rollback, however late the event arrives.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from uuid import NAMESPACE_URL, uuid5

from schemas.events import (
    RecordedEventMessage,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowRolledBack,
)
from schemas.messages import AgentName, Provenance, TaskCommand, TaskFailure, TaskResult
from schemas.topics import RESULTS, WORKFLOW_EVENTS, task_topic
from shared.llm.port import ModelError
from shared.runtime.clock import Clock
from shared.runtime.redaction import redact
from shared.transport import Bus, Delivery, Subscription, TransientError
from shared.transport.port import RawRecordLike

__all__ = ["STOPPING_EVENTS", "Perform", "TaskWorker", "result_id", "scheduled_version"]

_log = logging.getLogger(__name__)

Perform = Callable[[TaskCommand], Awaitable[TaskResult]]

#: Recorded events after which a workflow's running tasks are abandoned.
STOPPING_EVENTS = frozenset(
    e.event_type()
    for e in (WorkflowCancelled, WorkflowFailed, WorkflowCompleted, WorkflowRolledBack)
)
_VERSION = re.compile(r"-v(\d+)$")
#: How long a fetch of the kill-switch feed may wait on a broker without long polls.
WATCH_FETCH_WAIT_MS = 250
# Workflows remembered as stopped, so a task still queued for one is skipped; the oldest go
# first (forgetting one only costs a wasted call whose result the supervisor ignores).
_REMEMBERED_STOPS = 10_000


def result_id(workflow_id: str, task_id: str, attempt: int) -> str:
    """The deterministic CloudEvents id of a task attempt's result."""
    return str(uuid5(NAMESPACE_URL, f"agentlog:{workflow_id}:{task_id}:{attempt}"))


def scheduled_version(task_id: str) -> int | None:
    """The stream version of the TaskScheduled event that created ``task_id``, if it says."""
    match = _VERSION.search(task_id)
    return int(match.group(1)) if match else None


class TaskWorker:
    """Consumes ``agentlog.tasks.<agent>`` and answers on ``agentlog.results``."""

    def __init__(
        self,
        agent: AgentName,
        task_type: type[TaskCommand],
        perform: Perform,
        bus: Bus,
        clock: Clock,
        *,
        instance: str | None = None,
    ) -> None:
        self.agent: AgentName = agent
        self.task_type = task_type
        self._perform = perform
        self._bus = bus
        self._clock = clock
        # Names this process's watch group: every replica must see every stop event.
        self.instance = instance or uuid.uuid4().hex[:12]
        self.completed = 0
        self.abandoned = 0
        self._running: dict[str, dict[asyncio.Task[TaskResult], int | None]] = {}
        self._stop_reasons: dict[asyncio.Task[TaskResult], str] = {}
        self._stopped: OrderedDict[str, int] = OrderedDict()

    def subscription(self) -> Subscription:
        """The consumer group and topic this worker reads."""
        return Subscription(
            topics=[task_topic(self.agent)],
            group=f"agentlog.{self.agent}",
            handler=self.handle,
            service=self.agent,
        )

    def watch_subscription(self) -> Subscription:
        """The workflow-event feed, in a group of this process's own (a broadcast, not a queue).

        A new group reads the feed from its start; that is harmless (old events only stop
        tasks scheduled before them, and those are long gone) and needs no "latest" offset,
        which the embedded broker gets wrong.
        """
        return Subscription(
            topics=[WORKFLOW_EVENTS],
            group=f"agentlog.{self.agent}.watch.{self.instance}",
            handler=self.watch,
            service=self.agent,
            wants=_may_stop,
            # A stop reaching a running call a quarter second later costs little; polling the
            # whole audit feed every 10 ms in every worker costs CPU on both ends.
            fetch_wait_ms=WATCH_FETCH_WAIT_MS,
        )

    def in_flight(self) -> dict[str, int]:
        """How many performs run now, by workflow id."""
        return {workflow: len(jobs) for workflow, jobs in self._running.items()}

    async def watch(self, delivery: Delivery) -> None:
        """Abandon the running tasks of a workflow that just stopped or was rolled back."""
        event = delivery.message
        if not isinstance(event, RecordedEventMessage) or event.type not in STOPPING_EVENTS:
            return
        workflow = event.workflow_id
        self._stopped[workflow] = max(self._stopped.pop(workflow, 0), event.version)
        while len(self._stopped) > _REMEMBERED_STOPS:
            self._stopped.popitem(last=False)
        for job, version in list(self._running.get(workflow, {}).items()):
            if version is None or version < event.version:
                self._stop_reasons[job] = f"{event.type} at version {event.version}"
                job.cancel()

    async def handle(self, delivery: Delivery) -> None:
        """Do one task; a failure becomes a TaskFailure result, never a crash."""
        task = delivery.message
        if not isinstance(task, self.task_type):
            _log.warning(
                "ignoring %s on %s: not a %s", delivery.ce_type, delivery.topic, self.task_type.TYPE
            )
            return
        if task.deadline <= self._clock.now():
            # The supervisor has already timed this attempt out and moved on; skip the work.
            _log.info("skipping expired %s attempt %d", task.task_id, task.attempt)
            return
        version = scheduled_version(task.task_id)
        stopped_at = self._stopped.get(task.workflow_id)
        if stopped_at is not None and (version is None or version < stopped_at):
            _log.info("skipping %s of %s: the workflow stopped", task.task_id, task.workflow_id)
            return
        try:
            result = await self._run(task, version)
        except _Abandoned as abandoned:
            self.abandoned += 1
            _log.info(
                "abandoned %s attempt %d of %s (%s); no result published",
                task.task_id,
                task.attempt,
                task.workflow_id,
                abandoned,
            )
            return
        except TransientError:
            # A dependency of this worker is down (the search index's database, say): not the
            # task's fault, so no attempt is spent on it. The transport retries the record with
            # backoff until the dependency is back, or until the attempt's deadline has passed
            # (then it is skipped above, and the supervisor's timeout schedules the next one).
            raise
        except Exception as exc:  # the worker must answer, whatever the agent did
            _log.exception("task %s attempt %d failed", task.task_id, task.attempt)
            result = self._failure(task, exc)
            if result.retryable and isinstance(exc, ModelError) and exc.retry_after_s:
                left_s = (task.deadline - self._clock.now()).total_seconds()
                await asyncio.sleep(max(0.0, min(exc.retry_after_s, left_s)))
        try:
            await self._bus.publish(
                RESULTS,
                result,
                key=task.workflow_id,
                ce_id=result_id(task.workflow_id, task.task_id, task.attempt),
                subject=task.workflow_id,
            )
        except Exception as exc:
            # The answer exists but could not be sent: redo the task rather than lose it
            # (deterministic agents give the same result; the supervisor dedupes by attempt).
            raise TransientError(f"could not publish result: {exc!r}") from exc
        self.completed += 1

    async def _run(self, task: TaskCommand, version: int | None) -> TaskResult:
        """``perform`` as a task of its own, which ``watch`` may cancel."""
        job = asyncio.ensure_future(self._perform(task))
        jobs = self._running.setdefault(task.workflow_id, {})
        jobs[job] = version
        try:
            return await job
        except asyncio.CancelledError:
            current = asyncio.current_task()
            reason = self._stop_reasons.get(job)
            # Only our own cancel is an abandonment; a stopping bus cancels this handler too.
            if reason is None or (current is not None and current.cancelling()):
                raise
            raise _Abandoned(reason) from None
        finally:
            jobs.pop(job, None)
            if not jobs:
                self._running.pop(task.workflow_id, None)
            self._stop_reasons.pop(job, None)

    def _failure(self, task: TaskCommand, exc: Exception) -> TaskFailure:
        used = exc.provenance if isinstance(exc, ModelError) else None
        return TaskFailure(
            workflow_id=task.workflow_id,
            task_id=task.task_id,
            attempt=task.attempt,
            agent=self.agent,
            provenance=used or _no_provenance(),
            # Redacted before it is cut: a cut could leave a fragment the redactor misses.
            error=redact(f"{type(exc).__name__}: {exc}")[:500],
            # Errors that know whether another try can succeed say so; anything else may.
            retryable=bool(getattr(exc, "retryable", True)),
        )


class _Abandoned(Exception):
    """The workflow stopped while its task ran; the reason names the event."""


def _no_provenance() -> Provenance:
    return Provenance(provider="none", model="none", strategy_version="failure")


#: The audit feed's hint header (set by the supervisor's relay) naming the event type.
_EVENT_TYPE_HEADER = "agentlog-event-type"
_STOPPING_HINTS = frozenset(name.encode() for name in STOPPING_EVENTS)


def _may_stop(record: RawRecordLike) -> bool:
    """Whether an audit record may be a stopping event: most are not, and skipping them unread
    spares every worker a decode and a signature check per recorded event. Records without the
    hint (older relays) are read."""
    hint = dict(record.headers).get(_EVENT_TYPE_HEADER)
    return hint is None or hint in _STOPPING_HINTS
