"""W3C trace context in Kafka headers: a PRODUCER span per publish, a CONSUMER span per record.

Hand-rolled on ``opentelemetry.propagate`` rather than opentelemetry-instrumentation-aiokafka:
that instrumentor patches aiokafka globally (every client in the process, the benchmark's raw
baseline included) and ends its consumer span as soon as ``getone``/``getmany`` return, so
the handler never runs inside it. Here the handler runs inside the CONSUMER span, whose parent
is the producer's span, and the in-memory bus gets exactly the same spans.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableSequence
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import Span, SpanKind

from shared.transport.envelope import RawRecord

__all__ = ["inject_context", "process_span", "publish_span"]

_tracer = trace.get_tracer("agentlog.transport")

Headers = MutableSequence[tuple[str, bytes]]


class _HeaderSetter(Setter[Headers]):
    def set(self, carrier: Headers, key: str, value: str) -> None:
        carrier.append((key, value.encode()))


class _HeaderGetter(Getter[Mapping[str, bytes]]):
    def get(self, carrier: Mapping[str, bytes], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        # A garbled traceparent must not fail the record; the propagator ignores bad values.
        return [value.decode("utf-8", errors="replace")]

    def keys(self, carrier: Mapping[str, bytes]) -> list[str]:
        return list(carrier)


_setter = _HeaderSetter()
_getter = _HeaderGetter()


def inject_context(headers: Headers) -> None:
    """Append the current context's ``traceparent``/``tracestate`` to ``headers``."""
    propagate.inject(headers, setter=_setter)


@contextmanager
def publish_span(topic: str, *, key: str, ce_type: str) -> Iterator[Span]:
    """A PRODUCER span around one publish; inject inside it so consumers become its children."""
    attributes: dict[str, str] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.destination.name": topic,
        "messaging.kafka.message.key": key,
        "cloudevents.event_type": ce_type,
    }
    with _tracer.start_as_current_span(
        f"send {topic}", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        yield span


@contextmanager
def process_span(record: RawRecord, *, group: str) -> Iterator[Span]:
    """A CONSUMER span for handling ``record``, child of the context its producer injected."""
    parent = propagate.extract(dict(record.headers), getter=_getter)
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": record.topic,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.kafka.offset": record.offset,
        "messaging.consumer.group.name": group,
    }
    if record.key is not None:
        attributes["messaging.kafka.message.key"] = record.key.decode("utf-8", errors="replace")
    with _tracer.start_as_current_span(
        f"process {record.topic}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:
        yield span
