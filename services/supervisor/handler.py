"""Turns inbound messages into recorded decisions: catch up on history, decide, append with
tracking.

Per-workflow state is cached in memory. A tracked message (goal, result, control) is decided on
the cached state with no read at all: its append carries the state's version, so if another
supervisor wrote meanwhile the append fails with a conflict and the state is caught up from
the last version it knows (one small read, never a re-fold of the whole stream). The store
stays the truth: a conflict, a refusal or a restart only means catching up.
"""

from __future__ import annotations

import asyncio
import logging
import re
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime

from schemas.controls import Budget
from schemas.events import (
    ApprovalRejected,
    DomainEvent,
    ForkedEvent,
    SchedulingPaused,
    SchedulingResumed,
    WorkflowPolicy,
)
from schemas.messages import (
    ApprovalDecision,
    CancelWorkflow,
    ForkWorkflow,
    GoalSubmitted,
    PauseScheduling,
    RollbackWorkflow,
    TaskResult,
)
from shared.auth import Principal, Role
from shared.domain import (
    TERMINAL_EVENTS,
    CancelRequested,
    DecisionReceived,
    ForkRequested,
    GoalReceived,
    ResultReceived,
    ResumeRequested,
    RollbackRequested,
    Tick,
    Trigger,
    WorkflowState,
    WorkflowStatus,
    admit,
    decide,
)
from shared.domain.admission import target_problem
from shared.domain.statuses import FLEET_STREAM as DOMAIN_FLEET_STREAM
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

__all__ = ["CONSUMER", "FLEET_STREAM", "DecisionScope", "Supervisor"]

_log = logging.getLogger(__name__)

CONSUMER = "supervisor"
FLEET_STREAM = DOMAIN_FLEET_STREAM
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
_MAX_CONFLICT_RETRIES = 20
#: Workflows whose state stays cached; the least recently used are folded again when needed.
_CACHE_SIZE = 2_000
_LOCK_STRIPES = 256
#: How often tick() looks in the store for unfinished workflows this supervisor does not watch.
#: With several supervisors each one watches only the workflows it has handled messages for
#: (plus those unfinished when it started); when another supervisor dies, the workflows only
#: it knew would otherwise have nobody checking their task and approval deadlines or resuming
#: them after a pause (the group moves their partitions, but a workflow that waits receives
#: no message). Watching them too is safe: the store's version check lets one decision win.
DISCOVER_EVERY_S = 15.0
#: How many recently updated streams one discovery scan reads (the streams table only).
_DISCOVER_LIMIT = 100_000

#: Runs around each decision (state, decide, append): how the composition root adds a span.
DecisionScope = Callable[[str, Trigger], AbstractAsyncContextManager[None]]


@asynccontextmanager
async def _unscoped(workflow_id: str, trigger: Trigger) -> AsyncIterator[None]:
    yield


class Supervisor:
    """Applies the pure domain to each message and commits the outcome atomically."""

    def __init__(
        self,
        store: EventStore,
        clock: Clock,
        defaults: WorkflowPolicy,
        *,
        cache_size: int = _CACHE_SIZE,
        ceiling: Budget | None = None,
        decision_scope: DecisionScope = _unscoped,
    ) -> None:
        self._store = store
        self._decision_scope = decision_scope
        self._clock = clock
        self._defaults = defaults
        self._ceiling = ceiling or Budget()
        #: The operator-wide kill-switch, as recorded in the fleet stream (load() reads it).
        self.paused = False
        self._fleet_version = 0
        self._cache: OrderedDict[str, WorkflowState] = OrderedDict()
        self._cache_size = cache_size
        # One decision at a time per workflow: the deadline ticker and the consumer may both
        # act on one workflow, and the cached state must see each append exactly once. A fixed
        # pool of locks (striped by workflow id) needs no cleanup as workflows come and go.
        self._locks = [asyncio.Lock() for _ in range(_LOCK_STRIPES)]
        #: Set whenever new events commit, so the outbox relay publishes without polling delay.
        self.committed = asyncio.Event()
        #: Running workflows → their earliest open task deadline (None: unknown, check on the
        #: next tick). The ticker visits only workflows whose deadline has passed, so an idle
        #: fleet of thousands of workflows costs no reads.
        self.active: dict[str, datetime | None] = {}
        self._discovered_at: datetime | None = None

    async def handle(self, delivery: Delivery) -> None:
        """Handle one goal, result or control message (idempotent under redelivery)."""
        message = delivery.message
        now = self._clock.now()
        principal = delivery.principal
        name = principal.name if principal is not None else None
        trigger: Trigger
        match message:
            case GoalSubmitted():
                trigger = GoalReceived(message, self._defaults, now, name, self._ceiling)
                key = f"goal/{delivery.ce_id}"
            case TaskResult():
                trigger = ResultReceived(message, now)
                # Keyed by the attempt, not the ce_id: a worker's duplicate reply is the same fact.
                key = f"result/{message.workflow_id}/{message.task_id}/{message.attempt}"
            case CancelWorkflow():
                trigger = CancelRequested(message, now, name)
                key = f"control/{delivery.ce_id}"
            case RollbackWorkflow():
                trigger = RollbackRequested(message, now, name)
                key = f"control/{delivery.ce_id}"
            case ForkWorkflow():
                history = await self._fork_point(message)
                trigger = ForkRequested(message, history, now, name)
                key = f"control/{delivery.ce_id}"
            case ApprovalDecision():
                trigger = DecisionReceived(message, now, name)
                key = f"approval/{delivery.ce_id}"
            case PauseScheduling():
                await self._pause(message, delivery.ce_id, name)
                return
            case _:
                _log.warning("supervisor ignores %s from %s", delivery.ce_type, delivery.topic)
                return
        try:
            await self.execute(
                message.workflow_id,
                trigger,
                Tracking(CONSUMER, key),
                delivery.ce_id,
                principal_agent=_agent(principal),
                principal=name,
            )
        except StoreUnavailableError as exc:
            raise TransientError(str(exc)) from exc

    async def load(self) -> None:
        """Catch up on the operator-wide switches in the fleet stream (at start, and on every
        tick: with several supervisors, the one that recorded a switch is not the only one that
        must honour it). A resume schedules the held steps of this supervisor's workflows."""
        records = await self._store.read(FLEET_STREAM, after_version=self._fleet_version)
        if not records:
            return
        self._fleet_version = records[-1].version
        was_paused = self.paused
        self.paused = records[-1].type == SchedulingPaused.event_type()
        if was_paused and not self.paused:
            await self._resume_all()

    async def _resume_all(self) -> None:
        now = self._clock.now()
        for workflow_id in sorted(self.active):
            await self.execute(workflow_id, ResumeRequested(now), None, None)

    async def on_refused(self, key: str | None, ce_id: str | None, reason: str) -> None:
        """A decision the transport refused: record the attempt in the workflow it names."""
        if key and ce_id and _IDENTIFIER.match(key):
            await self.record_refusal(key, ce_id, f"decision refused: {reason}")

    async def record_refusal(self, workflow_id: str, ce_id: str, reason: str) -> None:
        """Record a decision the transport refused (unsigned, forged, not an approver) in the
        workflow it aimed at: a visible, rejected attempt that changes nothing."""
        event = ApprovalRejected(reason=reason[:500])
        async with self._lock(workflow_id):
            state = await self.state_of(workflow_id)
            if state.status is WorkflowStatus.NEW:
                return  # no such workflow: the dead letter is the only trace
            records = encode_events(
                [event],
                actor=CONSUMER,
                causation_id=ce_id,
                # Not a decision: the replayer folds it without asking today's code.
                trigger={"kind": "refused", "now": self._clock.now().isoformat()},
            )
            try:
                await self._store.append(
                    workflow_id,
                    records,
                    state.version,
                    tracking=Tracking(CONSUMER, f"refused/{ce_id}"),
                )
            except (AlreadyProcessedError, ConcurrencyConflictError):
                return
            state.apply(event)
            self.committed.set()

    async def _pause(self, message: PauseScheduling, ce_id: str, principal: str | None) -> None:
        now = self._clock.now()
        event: DomainEvent = (
            SchedulingPaused(reason=message.reason, requested_by=principal, at=now)
            if message.paused
            else SchedulingResumed(reason=message.reason, requested_by=principal, at=now)
        )
        records = encode_events(
            [event],
            actor=CONSUMER,
            causation_id=ce_id,
            principal=principal,
        )
        for _ in range(_MAX_CONFLICT_RETRIES):
            head = await self._store.read(FLEET_STREAM)
            try:
                await self._store.append(
                    FLEET_STREAM, records, len(head), tracking=Tracking(CONSUMER, f"fleet/{ce_id}")
                )
            except AlreadyProcessedError:
                return
            except ConcurrencyConflictError:
                continue
            break
        _log.warning("scheduling %s by %s", "paused" if message.paused else "resumed", principal)
        await self.load()

    def watch(self, workflow_id: str) -> None:
        """Check this workflow's deadlines on the next tick (used after a restart)."""
        self.active.setdefault(workflow_id, None)

    async def discover(self) -> None:
        """Watch every unfinished workflow in the store (each is checked on the next tick)."""
        for stream in await self._store.list_streams(limit=_DISCOVER_LIMIT):
            if stream.last_type not in TERMINAL_EVENTS and stream.stream_id != FLEET_STREAM:
                self.watch(stream.stream_id)

    async def tick(self) -> None:
        """Let time pass for every workflow with an expired (or unknown) deadline; every
        ``DISCOVER_EVERY_S``, first pick up unfinished workflows another supervisor started."""
        await self.load()
        now = self._clock.now()
        if (
            self._discovered_at is None
            or (now - self._discovered_at).total_seconds() >= DISCOVER_EVERY_S
        ):
            self._discovered_at = now
            await self.discover()
        due = sorted(
            w for w, deadline in self.active.items() if deadline is None or deadline <= now
        )
        for workflow_id in due:
            await self.execute(workflow_id, Tick(now), None, None)

    async def state_of(self, workflow_id: str, *, catch_up: bool = True) -> WorkflowState:
        """The workflow's current state: the cached one caught up with the store.

        ``catch_up=False`` trusts a cached state without reading: right for a decision that
        appends with the state's version, because the append then fails on a conflict if
        another writer moved the stream (and the caller catches up and decides again).
        """
        cached = self._cache.pop(workflow_id, None)
        state = cached or WorkflowState(workflow_id)
        if catch_up or cached is None:
            newer = await self._store.read(workflow_id, after_version=state.version)
            for record, event in zip(newer, decode_history(newer), strict=True):
                state.apply(event, record.version)
        self._cache[workflow_id] = state
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return state

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
        async with self._lock(workflow_id), self._decision_scope(workflow_id, trigger):
            return await self._execute(
                workflow_id, trigger, tracking, causation_id, principal_agent, principal
            )

    async def _execute(
        self,
        workflow_id: str,
        trigger: Trigger,
        tracking: Tracking | None,
        causation_id: str | None,
        principal_agent: str | None,
        principal: str | None,
    ) -> int:
        # A tracked message always appends (its tracking key at least), with the state's version,
        # so a cached state is safe to decide on: a stale one ends in a conflict, not in a wrong
        # write. Untracked triggers (ticks) may append nothing, so they read first.
        catch_up = tracking is None
        for _ in range(_MAX_CONFLICT_RETRIES):
            state = await self.state_of(workflow_id, catch_up=catch_up)
            refusal = admit(state, trigger, principal_agent=principal_agent)
            if refusal is not None and not catch_up:
                catch_up = True  # a refusal is final: make sure it was not a stale state's
                continue
            if refusal is not None:
                _log.warning("refused for %s: %s", workflow_id, refusal.detail)
                raise RejectedError(refusal.reason, refusal.detail)
            events = decide(state, trigger, paused=self.paused)
            if not events and tracking is None:
                self._track(state)
                return 0
            records = encode_events(
                events,
                actor=CONSUMER,
                causation_id=causation_id,
                principal=principal,
                trigger={
                    "kind": trigger.kind,
                    "now": trigger.now.isoformat(),
                    **({"paused": True} if self.paused else {}),
                },
            )
            try:
                await self._store.append(workflow_id, records, state.version, tracking=tracking)
            except AlreadyProcessedError:
                _log.debug("duplicate %s ignored", tracking)
                return 0
            except ConcurrencyConflictError:
                catch_up = True  # another writer moved the stream: catch up and decide again
                continue
            if events:
                self.committed.set()
                for event in events:  # fold the new events in; no second read
                    state.apply(event)
                self._track(state)
            return len(events)
        raise RuntimeError(f"workflow {workflow_id}: gave up after repeated write conflicts")

    async def _fork_point(self, fork: ForkWorkflow) -> tuple[ForkedEvent, ...]:
        """The parent's effective history up to the fork point, or () when it cannot be forked
        there (admission then refuses the fork with the reason)."""
        async with self._lock(fork.parent_workflow_id):
            parent = await self.state_of(fork.parent_workflow_id)
            problem = target_problem(parent, fork.at_version)
            if problem is not None:
                if parent.status is not WorkflowStatus.NEW:
                    detail = f"cannot fork {fork.parent_workflow_id}: {problem}"
                    raise RejectedError("invalid", detail)
                return ()
            return tuple(
                ForkedEvent(
                    version=version,
                    type=event.event_type(),
                    schema_version=event.VERSION,
                    data=event.model_dump(mode="json"),
                )
                for version, event in parent.effective
                if version <= fork.at_version
            )

    def _lock(self, workflow_id: str) -> asyncio.Lock:
        return self._locks[zlib.crc32(workflow_id.encode()) % _LOCK_STRIPES]

    def _track(self, state: WorkflowState) -> None:
        if state.status.terminal:
            self.active.pop(state.workflow_id, None)
        elif state.status is WorkflowStatus.PENDING_APPROVAL and state.pending is not None:
            # Waiting costs nothing: the ticker visits it only when its decision is overdue.
            self.active[state.workflow_id] = state.pending.deadline
        elif state.status is WorkflowStatus.RUNNING:
            deadlines = [task.deadline for task in state.open_tasks]
            self.active[state.workflow_id] = min(deadlines) if deadlines else None


def _agent(principal: Principal | None) -> str | None:
    return principal.agent if principal is not None and principal.role is Role.AGENT else None
