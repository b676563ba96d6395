"""What an operator asks of agentlog, for the CLI and the Python client alike.

Goals and control messages (cancel, rollback, fork) are published signed as the ``operator``
principal, exactly as any upstream system or operator tool would publish them. Before a control
message is published, ``check_*`` tells from the event store whether the supervisor would
accept it, so a mistake is one clear line instead of a dead letter. Outcomes are awaited in the
event store (``wait_for_completion``) or on ``agentlog.completions`` (``receive_completion``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import uuid4

from schemas.messages import (
    CancelWorkflow,
    CompletionEvent,
    ForkWorkflow,
    GoalSubmitted,
    RollbackWorkflow,
)
from schemas.topics import COMPLETIONS, CONTROL, GOALS
from shared.agents.constraints import constraint_problem
from shared.domain import TERMINAL_EVENTS, GoalReceived, WorkflowState, admit, completion_for
from shared.domain.admission import target_problem
from shared.eventstore import EventStore, RecordedEvent
from shared.eventstore.postgres import PostgresEventStore
from shared.readside.queries import fold, read_state
from shared.runtime.wiring import kafka_bus
from shared.settings import Settings
from shared.transport import Delivery, Subscription
from shared.transport.kafka import KafkaBus

__all__ = [
    "RefusedError",
    "WaitTimeoutError",
    "check_cancel",
    "check_fork",
    "check_goal",
    "check_rollback",
    "open_store",
    "publish_cancel",
    "publish_fork",
    "publish_goal",
    "publish_rollback",
    "receive_completion",
    "runs_finished",
    "wait_for_completion",
]


class WaitTimeoutError(TimeoutError):
    """The workflow did not finish in time."""


class RefusedError(ValueError):
    """The workflow's recorded state rules the request out; nothing was published."""


def open_store(settings: Settings) -> EventStore:
    """A store for reading (small pool: one short-lived client)."""
    return PostgresEventStore(settings.require_database_url(), pool_max=2)


def _operator_bus(settings: Settings, topic: str) -> KafkaBus:
    # Goals and control messages are signed as an operator: the supervisor accepts control
    # messages only from one.
    return kafka_bus(settings, service="cli", topics=[topic], principal="operator")


async def publish_goal(settings: Settings, goal: GoalSubmitted) -> str:
    """Publish a goal exactly as an upstream system would; returns its ce_id."""
    ce_id = str(uuid4())
    async with _operator_bus(settings, GOALS) as bus:
        await bus.publish(GOALS, goal, key=goal.workflow_id, ce_id=ce_id, subject=goal.workflow_id)
    return ce_id


async def _publish_control(
    settings: Settings, message: CancelWorkflow | RollbackWorkflow | ForkWorkflow
) -> str:
    ce_id = str(uuid4())
    async with _operator_bus(settings, CONTROL) as bus:
        await bus.publish(
            CONTROL, message, key=message.workflow_id, ce_id=ce_id, subject=message.workflow_id
        )
    return ce_id


async def publish_cancel(settings: Settings, cancel: CancelWorkflow) -> str:
    """Pull the kill-switch on a workflow; returns the message's ce_id."""
    return await _publish_control(settings, cancel)


async def publish_rollback(settings: Settings, rollback: RollbackWorkflow) -> str:
    """Ask the supervisor to roll a workflow back; returns the message's ce_id (the
    ``causation_id`` of the ``WorkflowRolledBack`` it records)."""
    return await _publish_control(settings, rollback)


async def publish_fork(settings: Settings, fork: ForkWorkflow) -> str:
    """Ask the supervisor to fork a workflow (keyed by the new workflow's id); returns the
    message's ce_id."""
    return await _publish_control(settings, fork)


async def check_goal(store: EventStore, goal: GoalSubmitted) -> None:
    """RefusedError when the supervisor would refuse the goal as a conflict (its id taken by a
    different goal); the identical goal again is accepted, idempotently. The rule is the
    domain's own admission, not a copy of it."""
    state = await read_state(store, goal.workflow_id)
    refusal = admit(
        state, GoalReceived(goal, state.policy, datetime.now(UTC)), principal_agent=None
    )
    if refusal is not None and refusal.reason == "conflict":
        raise RefusedError(f"{refusal.detail} (--workflow-id)")


async def check_cancel(store: EventStore, workflow_id: str) -> WorkflowState:
    """The workflow's state, if a cancel would stop it; else RefusedError."""
    state = await read_state(store, workflow_id)
    if state.version == 0:
        raise RefusedError(f"no workflow {workflow_id!r}")
    if state.status.terminal:
        raise RefusedError(
            f"workflow {workflow_id} already {state.status.value}: nothing to cancel"
        )
    return state


async def check_rollback(store: EventStore, workflow_id: str, to_version: int) -> WorkflowState:
    """The workflow's state, if it can be rolled back to ``to_version``; else RefusedError."""
    state = await read_state(store, workflow_id)
    problem = target_problem(state, to_version)
    if problem is not None:
        raise RefusedError(f"cannot roll {workflow_id} back: {problem}")
    return state


async def check_fork(store: EventStore, fork: ForkWorkflow) -> None:
    """RefusedError unless the parent can be forked at the version under the new id."""
    parent = await read_state(store, fork.parent_workflow_id)
    problem = target_problem(parent, fork.at_version)
    if problem is not None:
        raise RefusedError(f"cannot fork {fork.parent_workflow_id}: {problem}")
    if await store.stream_version(fork.workflow_id) > 0:
        raise RefusedError(f"workflow {fork.workflow_id!r} already exists; choose a new id")
    problem = constraint_problem(fork.constraints or [])
    if problem is not None:
        raise RefusedError(problem)


def runs_finished(state: WorkflowState) -> int:
    """How many of the workflow's runs have ended: pass it as ``after_run`` to wait for the
    outcome of a change made now (a rollback of a finished run starts the next run; of an
    unfinished one, changes how the current run ends)."""
    return state.run if state.status.terminal else state.run - 1


async def wait_for_completion(
    store: EventStore,
    workflow_id: str,
    timeout_s: float,
    *,
    after_run: int = 0,
    caused_by: str | None = None,
    poll_s: float = 1.0,
) -> CompletionEvent:
    """Wait until the workflow finishes a run numbered above ``after_run``; its completion event.

    ``caused_by`` (a control message's ce_id) also requires the run to end after the events
    that message caused, so a run that happened to end just before a rollback took effect is
    not mistaken for the rollback's outcome. Reads the event store, never Kafka's "latest"
    offset (wrong on the embedded broker); the completion is rebuilt by the same pure function
    the relay publishes with, ``supersedes`` included. Woken by the store's ``watch`` on the
    stream (Postgres: LISTEN/NOTIFY), it reads only what was appended since its last read and
    folds only when that holds an ending; ``poll_s`` is the floor should a wake-up be lost.
    """
    deadline = time.monotonic() + timeout_s
    records: list[RecordedEvent] = []
    async with store.watch(workflow_id) as appended:
        while True:
            # Cleared before the read: an append that lands during it sets it again.
            appended.clear()
            seen = records[-1].version if records else 0
            new = await store.read(workflow_id, after_version=seen)
            records += new
            # Only an ending (or a fork's copied history, read first) can finish a run.
            if new and (not seen or any(r.type in TERMINAL_EVENTS for r in new)):
                completion = _completion(workflow_id, records, after_run, caused_by)
                if completion is not None:
                    return completion
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeoutError(f"workflow {workflow_id} did not finish in {timeout_s:.0f}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(appended.wait(), min(poll_s, remaining))


def _completion(
    workflow_id: str, records: Sequence[RecordedEvent], after_run: int, caused_by: str | None
) -> CompletionEvent | None:
    if not records:
        return None
    state = fold(records, workflow_id)
    if not state.status.terminal or state.run <= after_run:
        return None
    if caused_by is not None:
        caused = [r.version for r in records if r.metadata.get("causation_id") == caused_by]
        if not caused or caused[0] >= state.version:
            return None
    final = next(e for _, e in reversed(state.effective) if e.event_type() in TERMINAL_EVENTS)
    ids = {r.version: r.event_id for r in records}
    return completion_for(state, final, ids.get)


async def receive_completion(
    settings: Settings, workflow_id: str, timeout_s: float
) -> CompletionEvent:
    """Consume ``agentlog.completions`` as a downstream system would, until this workflow's
    completion arrives. Reads from the beginning with a throwaway group: a known position,
    never "latest" (wrong on the embedded broker)."""
    arrived: asyncio.Future[CompletionEvent] = asyncio.get_running_loop().create_future()

    async def handle(delivery: Delivery) -> None:
        message = delivery.message
        if (
            isinstance(message, CompletionEvent)
            and message.workflow_id == workflow_id
            and not arrived.done()
        ):
            arrived.set_result(message)

    async with _operator_bus(settings, COMPLETIONS) as bus:
        group = f"agentlog.cli.{uuid4().hex[:12]}"
        await bus.subscribe(Subscription([COMPLETIONS], group, handle, "cli"))
        try:
            return await asyncio.wait_for(arrived, timeout_s)
        except TimeoutError:
            raise WaitTimeoutError(
                f"no completion for {workflow_id} on {COMPLETIONS} within {timeout_s:.0f}s"
            ) from None
