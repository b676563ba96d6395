"""Tracing around the event store port: a span per append and read, inside a workflow's trace.

``TracingEventStore`` wraps any ``EventStore``. It also remembers, per stream, the trace
context stored with the stream's latest event (``last_context``): a decision that no message
carries (a deadline tick, a human's approval) rejoins the workflow's trace through it. And it
closes each approval wait: when a pending ``ApprovalRequested`` is answered, a span from the
request to the answer is recorded in the trace that asked.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from schemas.events import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowRolledBack,
)
from shared.eventstore.forwarding import ForwardingEventStore
from shared.eventstore.port import (
    EventStore,
    NewEvent,
    RecordedEvent,
    Tracking,
)
from shared.telemetry.exporters import workflow_scope
from shared.telemetry.spans import WORKFLOW_ATTRIBUTE

__all__ = ["TracingEventStore"]

_REMEMBERED_STREAMS = 10_000
_REQUESTED = ApprovalRequested.event_type()
# What ends a wait for a human: an answer, or the workflow ending or going back.
_ANSWERS = frozenset(
    e.event_type()
    for e in (
        ApprovalGranted,
        ApprovalDenied,
        WorkflowCancelled,
        WorkflowCompleted,
        WorkflowFailed,
        WorkflowRolledBack,
    )
)


@dataclass(frozen=True)
class _Wait:
    request_id: str
    kind: str
    carrier: Mapping[str, str]
    since_ns: int


class TracingEventStore(ForwardingEventStore):
    """``inner`` with spans around ``append``, ``read`` and ``read_all``.

    Only calls made inside a trace get a span: the relay's polling of the feed and a
    supervisor's start-up scans would otherwise each open a trace of their own.
    """

    def __init__(self, inner: EventStore, *, system: str = "postgresql") -> None:
        super().__init__(inner)
        self._tracer = trace.get_tracer("agentlog.eventstore")
        self._system = system
        self._contexts: OrderedDict[str, Mapping[str, str]] = OrderedDict()
        self._waits: dict[str, _Wait] = {}

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        tracking: Tracking | None = None,
    ) -> list[RecordedEvent]:
        attributes: dict[str, Any] = {
            "db.operation.name": "append",
            "agentlog.expected_version": expected_version,
            "agentlog.events": [event.type for event in events],
        }
        with self._span("store append", stream_id, attributes) as span:
            recorded = await self.inner.append(
                stream_id, events, expected_version, tracking=tracking
            )
            if span.is_recording() and recorded:
                span.set_attribute("agentlog.version", recorded[-1].version)
        self._learn(stream_id, recorded, answered=True)
        return recorded

    async def read(
        self, stream_id: str, *, after_version: int = 0, up_to_version: int | None = None
    ) -> list[RecordedEvent]:
        attributes = {"db.operation.name": "read", "agentlog.after_version": after_version}
        with self._span("store read", stream_id, attributes) as span:
            records = await self.inner.read(
                stream_id, after_version=after_version, up_to_version=up_to_version
            )
            if span.is_recording():
                span.set_attribute("agentlog.records", len(records))
        if up_to_version is None:
            self._learn(stream_id, records, answered=False)
        return records

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        attributes = {"db.operation.name": "read_all", "agentlog.after_position": after_position}
        with self._span("store read_all", None, attributes):
            return await self.inner.read_all(after_position, limit)

    async def last_context(self, stream_id: str) -> Context | None:
        """The trace context stored with the stream's latest event (None: none stored).

        Known from this store's own appends and reads; otherwise the last event is read.
        """
        carrier = self._contexts.get(stream_id)
        if carrier is None:
            head = await self.inner.stream_head(stream_id)
            if head is None:
                return None
            self._learn(
                stream_id, await self.inner.read(stream_id, after_version=head.version - 1), False
            )
            carrier = self._contexts.get(stream_id)
        if not carrier:
            return None
        extracted = propagate.extract(carrier)
        valid = trace.get_current_span(extracted).get_span_context().is_valid
        return extracted if valid else None

    def _span(
        self, name: str, stream_id: str | None, attributes: dict[str, Any]
    ) -> AbstractContextManager[Span]:
        if not trace.get_current_span().get_span_context().is_valid:
            return trace.use_span(trace.INVALID_SPAN, end_on_exit=False)
        attributes["db.system.name"] = self._system
        if stream_id is not None:
            attributes[WORKFLOW_ATTRIBUTE] = stream_id
        return self._tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes)

    def _learn(
        self, stream_id: str, records: Iterable[RecordedEvent | NewEvent], answered: bool
    ) -> None:
        for record in records:
            carrier = record.metadata.get("trace_context")
            if isinstance(carrier, dict):
                self._contexts[stream_id] = carrier
                self._contexts.move_to_end(stream_id)
            if record.type == _REQUESTED:
                self._waits[stream_id] = _Wait(
                    str(record.data.get("request_id", "")),
                    str(record.data.get("kind", "")),
                    carrier if isinstance(carrier, dict) else {},
                    _time_ns(record),
                )
            elif record.type in _ANSWERS and stream_id in self._waits:
                wait = self._waits.pop(stream_id)
                if answered:  # only a live answer: history read after a restart is not a wait
                    self._close_wait(stream_id, wait, record.type)
        while len(self._contexts) > _REMEMBERED_STREAMS:
            self._contexts.popitem(last=False)

    def _close_wait(self, stream_id: str, wait: _Wait, outcome: str) -> None:
        parent = propagate.extract(wait.carrier)
        with workflow_scope(stream_id):
            span: Span = self._tracer.start_span(
                "approval wait",
                context=parent,
                start_time=wait.since_ns or None,
                attributes={
                    WORKFLOW_ATTRIBUTE: stream_id,
                    "agentlog.approval.request_id": wait.request_id,
                    "agentlog.approval.kind": wait.kind,
                    "agentlog.approval.outcome": outcome,
                },
            )
            if outcome == ApprovalDenied.event_type():
                span.set_status(Status(StatusCode.ERROR, "denied"))
            span.end()


def _time_ns(record: RecordedEvent | NewEvent) -> int:
    if isinstance(record, RecordedEvent):
        return int(record.recorded_at.timestamp() * 1e9)
    return 0
