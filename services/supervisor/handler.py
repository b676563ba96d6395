"""Turns inbound messages into recorded decisions: read history, decide, append with tracking."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from schemas.events import WorkflowPolicy
from schemas.messages import CancelWorkflow, GoalSubmitted, TaskResult
from shared.auth import Principal, Role
from shared.domain import (
    CancelRequested,
    GoalReceived,
    ResultReceived,
    Tick,
    Trigger,
    WorkflowState,
    WorkflowStatus,
    admit,
    decide,
    replay,
)
from shared.eventstore import (
    AlreadyProcessedError,
    ConcurrencyConflictError,
    EventStore,
    StoreUnavailableError,
    Tracking,
)
from shared.runtime.clock import Clock
from shared.runtime.codec import decode_history, encode_events
from shared.transport import Delivery, RejectedError, TransientError

__all__ = ["CONSUMER", "Supervisor"]

_log = logging.getLogger(__name__)

CONSUMER = "supervisor"
_MAX_CONFLICT_RETRIES = 20


class Supervisor:
    """Applies the pure domain to each message and commits the outcome atomically."""

    def __init__(self, store: EventStore, clock: Clock, defaults: WorkflowPolicy) -> None:
        self._store = store
        self._clock = clock
        self._defaults = defaults
        #: Set whenever new events commit, so the outbox relay publishes without polling delay.
        self.committed = asyncio.Event()
        #: Running workflows → their earliest open task deadline (None: unknown, check on the
        #: next tick). The ticker visits only workflows whose deadline has passed, so an idle
        #: fleet of thousands of workflows costs no reads.
        self.active: dict[str, datetime | None] = {}

    async def handle(self, delivery: Delivery) -> None:
        """Handle one goal, result or control message (idempotent under redelivery)."""
        message = delivery.message
        now = self._clock.now()
        principal = delivery.principal
        trigger: Trigger
        match message:
            case GoalSubmitted():
                workflow_id = message.workflow_id
                trigger = GoalReceived(message, self._defaults, now, _name(principal))
                key = f"goal/{delivery.ce_id}"
            case TaskResult():
                workflow_id = message.workflow_id
                trigger = ResultReceived(message, now)
                # Keyed by the attempt, not the ce_id: a worker's duplicate reply is the same fact.
                key = f"result/{workflow_id}/{message.task_id}/{message.attempt}"
            case CancelWorkflow():
                workflow_id = message.workflow_id
                trigger = CancelRequested(message, now, _name(principal))
                key = f"control/{delivery.ce_id}"
            case _:
                _log.warning("supervisor ignores %s from %s", delivery.ce_type, delivery.topic)
                return
        agent = principal.agent if principal is not None and principal.role is Role.AGENT else None
        try:
            await self.execute(
                workflow_id,
                trigger,
                Tracking(CONSUMER, key),
                delivery.ce_id,
                principal_agent=agent,
                principal=_name(principal),
            )
        except StoreUnavailableError as exc:
            raise TransientError(str(exc)) from exc

    def watch(self, workflow_id: str) -> None:
        """Check this workflow's deadlines on the next tick (used after a restart)."""
        self.active.setdefault(workflow_id, None)

    async def tick(self) -> None:
        """Let time pass for every workflow with an expired (or unknown) deadline."""
        now = self._clock.now()
        due = sorted(
            w for w, deadline in self.active.items() if deadline is None or deadline <= now
        )
        for workflow_id in due:
            await self.execute(workflow_id, Tick(now), None, None)

    async def execute(
        self,
        workflow_id: str,
        trigger: Trigger,
        tracking: Tracking | None,
        causation_id: str | None,
        *,
        principal_agent: str | None = None,
        principal: str | None = None,
    ) -> int:
        """Decide and append; retried on a concurrent writer. Returns events appended.

        Raises ``RejectedError`` (nothing recorded) when the domain refuses the message.
        """
        for _ in range(_MAX_CONFLICT_RETRIES):
            history = decode_history(await self._store.read(workflow_id))
            state = replay(workflow_id, history)
            refusal = admit(state, trigger, principal_agent=principal_agent)
            if refusal is not None:
                _log.warning("refused for %s: %s", workflow_id, refusal.detail)
                raise RejectedError(refusal.reason, refusal.detail)
            events = decide(state, trigger)
            if not events and tracking is None:
                self._track(state)
                return 0
            records = encode_events(
                events,
                actor=CONSUMER,
                correlation_id=workflow_id,
                causation_id=causation_id,
                principal=principal,
            )
            try:
                await self._store.append(workflow_id, records, state.version, tracking=tracking)
            except AlreadyProcessedError:
                _log.debug("duplicate %s ignored", tracking)
                return 0
            except ConcurrencyConflictError:
                continue
            if events:
                self.committed.set()
                for event in events:  # fold the new events in; no second replay
                    state.apply(event)
                self._track(state)
            return len(events)
        raise RuntimeError(f"workflow {workflow_id}: gave up after repeated write conflicts")

    def _track(self, state: WorkflowState) -> None:
        if state.status.terminal:
            self.active.pop(state.workflow_id, None)
        elif state.status is WorkflowStatus.RUNNING:
            deadlines = [task.deadline for task in state.open_tasks]
            self.active[state.workflow_id] = min(deadlines) if deadlines else None


def _name(principal: Principal | None) -> str | None:
    return principal.name if principal is not None else None
