"""The runtime every worker agent shares: take a task, do it, publish the result.

Workers keep no state of their own. A redelivered task is simply done again: results carry a
``ce_id`` derived from (workflow, task, attempt), and the supervisor records that key in the
same transaction as the result's events, so a duplicate result changes nothing.

A failed task is answered with a ``TaskFailure`` whose error text is redacted (it is
published and stored). A ``ModelError`` decides ``retryable``; a retryable one that carries the
provider's ``retry_after_s`` is reported only after that wait (never past the task's
deadline), so the supervisor's next attempt does not hit a rate-limited provider at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from uuid import NAMESPACE_URL, uuid5

from schemas.messages import AgentName, Provenance, TaskCommand, TaskFailure, TaskResult
from schemas.topics import RESULTS, task_topic
from shared.llm.port import ModelError
from shared.runtime.clock import Clock
from shared.runtime.redaction import redact
from shared.transport import Bus, Delivery, Subscription, TransientError

__all__ = ["Perform", "TaskWorker", "result_id"]

_log = logging.getLogger(__name__)

Perform = Callable[[TaskCommand], Awaitable[TaskResult]]


def result_id(workflow_id: str, task_id: str, attempt: int) -> str:
    """The deterministic CloudEvents id of a task attempt's result."""
    return str(uuid5(NAMESPACE_URL, f"agentlog:{workflow_id}:{task_id}:{attempt}"))


class TaskWorker:
    """Consumes ``agentlog.tasks.<agent>`` and answers on ``agentlog.results``."""

    def __init__(
        self,
        agent: AgentName,
        task_type: type[TaskCommand],
        perform: Perform,
        bus: Bus,
        clock: Clock,
    ) -> None:
        self.agent: AgentName = agent
        self.task_type = task_type
        self._perform = perform
        self._bus = bus
        self._clock = clock
        self.completed = 0

    def subscription(self) -> Subscription:
        """The consumer group and topic this worker reads."""
        return Subscription(
            topics=[task_topic(self.agent)],
            group=f"agentlog.{self.agent}",
            handler=self.handle,
            service=self.agent,
        )

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
        try:
            result = await self._perform(task)
        except Exception as exc:  # the worker must answer, whatever the agent did
            _log.exception("task %s attempt %d failed", task.task_id, task.attempt)
            retryable = exc.retryable if isinstance(exc, ModelError) else True
            result = TaskFailure(
                workflow_id=task.workflow_id,
                task_id=task.task_id,
                attempt=task.attempt,
                agent=self.agent,
                provenance=_no_provenance(),
                # Redacted before it is cut: a cut could leave a fragment the redactor misses.
                error=redact(f"{type(exc).__name__}: {exc}")[:500],
                retryable=retryable,
            )
            if retryable and isinstance(exc, ModelError) and exc.retry_after_s:
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


def _no_provenance() -> Provenance:
    return Provenance(provider="none", model="none", strategy_version="failure")
