"""Spans around the steps a workflow takes between the ports: a supervisor's decision, the
relay publishing a recorded event, a worker agent's step.

Each is a scope a composition root hands to the component that runs the step, so the
component itself knows nothing of OpenTelemetry.

Which trace a decision joins:

- a goal or a result: the trace its message carried (the CONSUMER span is current);
- a tick, a human's decision, a cancel, a resume: the workflow's own trace, continued from the
  context stored with its latest event (the message, if any, is linked);
- a rollback or a fork: the trace of the message that asked for it, a new one, linked to the
  trace it came from (the rolled-back workflow's, the fork's parent's).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link

from schemas.messages import AgentName, TaskCommand, TaskResult
from shared.domain import ForkRequested, RollbackRequested, Trigger
from shared.eventstore import RecordedEvent
from shared.runtime.worker import Perform
from shared.telemetry.exporters import workflow_scope
from shared.telemetry.spans import WORKFLOW_ATTRIBUTE
from shared.telemetry.tracing_store import TracingEventStore

__all__ = ["DecisionSpans", "goal_published", "relay_span", "traced_perform"]

_CONTINUING = frozenset({"tick", "approval", "cancel", "resume"})


class DecisionSpans:
    """A ``decide <trigger>`` span around each of the supervisor's decisions."""

    def __init__(self, store: TracingEventStore) -> None:
        self._store = store
        self._tracer = trace.get_tracer("agentlog.supervisor")

    @contextlib.asynccontextmanager
    async def __call__(self, workflow_id: str, trigger: Trigger) -> AsyncIterator[None]:
        """Use as ``async with scope(workflow_id, trigger):`` around deciding and appending."""
        current = trace.get_current_span().get_span_context()
        parent: Context | None = None
        links: list[Link] = []
        origin = self._origin(workflow_id, trigger)
        came_from = await self._store.last_context(origin) if origin else None
        from_span = trace.get_current_span(came_from).get_span_context() if came_from else None
        if trigger.kind in _CONTINUING and came_from is not None:
            parent = came_from
            if (
                current.is_valid
                and from_span is not None
                and current.trace_id != from_span.trace_id
            ):
                links.append(Link(current, {"agentlog.link": "message"}))
        elif from_span is not None and from_span.trace_id != current.trace_id:
            links.append(Link(from_span, {"agentlog.link": f"{trigger.kind} origin"}))
        attributes = {WORKFLOW_ATTRIBUTE: workflow_id, "agentlog.trigger": trigger.kind}
        with (
            workflow_scope(workflow_id),
            self._tracer.start_as_current_span(
                f"decide {trigger.kind}", context=parent, links=links, attributes=attributes
            ),
        ):
            yield

    @staticmethod
    def _origin(workflow_id: str, trigger: Trigger) -> str | None:
        """The stream whose trace the decision continues or links to."""
        if isinstance(trigger, ForkRequested):
            return trigger.fork.parent_workflow_id
        if isinstance(trigger, RollbackRequested) or trigger.kind in _CONTINUING:
            return workflow_id
        return None


@contextlib.contextmanager
def relay_span(record: RecordedEvent) -> Iterator[None]:
    """A ``relay <EventType>`` span in the trace that recorded ``record`` (its metadata's
    ``trace_context``), around publishing it: the log is the outbox, so the hop from a
    decision to the messages it caused joins the same trace."""
    carrier = record.metadata.get("trace_context") or {}
    tracer = trace.get_tracer("agentlog.relay")
    attributes: dict[str, str | int] = {
        WORKFLOW_ATTRIBUTE: record.stream_id,
        "agentlog.event_type": record.type,
        "agentlog.position": record.position,
        "agentlog.version": record.version,
    }
    with (
        workflow_scope(record.stream_id),
        tracer.start_as_current_span(
            f"relay {record.type}", context=propagate.extract(carrier), attributes=attributes
        ),
    ):
        yield


def traced_perform(agent: AgentName, perform: Perform) -> Perform:
    """``perform`` inside a ``step <agent>`` span: one agent step, model calls within it."""
    tracer = trace.get_tracer("agentlog.agent")

    async def traced(task: TaskCommand) -> TaskResult:
        attributes: dict[str, str | int] = {
            WORKFLOW_ATTRIBUTE: task.workflow_id,
            "agentlog.agent": agent,
            "agentlog.task_id": task.task_id,
            "agentlog.attempt": task.attempt,
            "agentlog.profile": task.profile,
        }
        with (
            workflow_scope(task.workflow_id),
            tracer.start_as_current_span(f"step {agent}", attributes=attributes) as span,
        ):
            result = await perform(task)
            span.set_attribute("agentlog.result", type(result).__name__)
            return result

    return traced


@contextlib.contextmanager
def goal_published(workflow_id: str) -> Iterator[None]:
    """The root of a workflow's trace, around publishing its goal (the transport's PRODUCER
    span, and so everything the goal causes, becomes its child)."""
    tracer = trace.get_tracer("agentlog.upstream")
    with (
        workflow_scope(workflow_id),
        tracer.start_as_current_span(
            "goal published", attributes={WORKFLOW_ATTRIBUTE: workflow_id}
        ),
    ):
        yield
