"""What the CLI (and the demo) do against the stack: publish goals, read workflow state."""

from __future__ import annotations

import asyncio
import time
from uuid import uuid4

from schemas.messages import CancelWorkflow, CompletionEvent, GoalSubmitted
from schemas.topics import COMPLETIONS, CONTROL, GOALS
from shared.domain import WorkflowState, completion_for, replay
from shared.eventstore import EventStore
from shared.eventstore.postgres import PostgresEventStore
from shared.runtime.codec import decode_history
from shared.runtime.wiring import kafka_bus
from shared.settings import Settings
from shared.transport import Delivery, Subscription
from shared.transport.kafka import KafkaBus

__all__ = [
    "WaitTimeoutError",
    "open_store",
    "publish_cancel",
    "publish_goal",
    "read_state",
    "receive_completion",
    "wait_for_completion",
]


class WaitTimeoutError(TimeoutError):
    """The workflow did not finish in time."""


def open_store(settings: Settings) -> EventStore:
    """A store for reading (small pool: the CLI is one short-lived client)."""
    return PostgresEventStore(settings.require_database_url(), pool_max=2)


def _cli_bus(settings: Settings, topic: str) -> KafkaBus:
    # The CLI acts for an operator: its goals and control messages are signed as one.
    return kafka_bus(settings, service="cli", topics=[topic], principal="operator")


async def publish_goal(settings: Settings, goal: GoalSubmitted) -> str:
    """Publish a goal exactly as an upstream system would; returns its ce_id."""
    ce_id = str(uuid4())
    async with _cli_bus(settings, GOALS) as bus:
        await bus.publish(GOALS, goal, key=goal.workflow_id, ce_id=ce_id, subject=goal.workflow_id)
    return ce_id


async def publish_cancel(settings: Settings, cancel: CancelWorkflow) -> None:
    """Pull the kill-switch on a workflow."""
    async with _cli_bus(settings, CONTROL) as bus:
        await bus.publish(CONTROL, cancel, key=cancel.workflow_id, subject=cancel.workflow_id)


async def read_state(store: EventStore, workflow_id: str) -> WorkflowState:
    """The workflow's current state, rebuilt from its events."""
    return replay(workflow_id, decode_history(await store.read(workflow_id)))


async def wait_for_completion(
    store: EventStore, workflow_id: str, timeout_s: float, poll_s: float = 0.1
) -> CompletionEvent:
    """Wait until the workflow's stream ends, and return its completion event.

    Reads the event store, never Kafka's "latest" offset (wrong on the embedded broker). The
    completion is rebuilt by the same pure function the relay publishes with.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        history = decode_history(await store.read(workflow_id))
        if history:
            completion = completion_for(replay(workflow_id, history), history[-1])
            if completion is not None:
                return completion
        if time.monotonic() > deadline:
            raise WaitTimeoutError(f"workflow {workflow_id} did not finish in {timeout_s:.0f}s")
        await asyncio.sleep(poll_s)


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

    async with _cli_bus(settings, COMPLETIONS) as bus:
        group = f"agentlog.cli.{uuid4().hex[:12]}"
        await bus.subscribe(Subscription([COMPLETIONS], group, handle, "cli"))
        try:
            return await asyncio.wait_for(arrived, timeout_s)
        except TimeoutError:
            raise WaitTimeoutError(
                f"no completion for {workflow_id} on {COMPLETIONS} within {timeout_s:.0f}s"
            ) from None
