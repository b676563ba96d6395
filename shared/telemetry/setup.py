"""Process-wide OpenTelemetry tracing: one tracer provider per service, chosen by settings.

The transport creates its spans through the global API (``shared.transport.tracing``); this
module decides where they go: nowhere (``none``: spans and trace ids still exist, so context
still propagates through Kafka headers), stdout (``console``), an OTLP collector (``otlp``,
only when an ``opentelemetry-exporter-otlp`` package is installed; otherwise a warning; the
endpoint comes from the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``), or JSON lines under
``<state_dir>/traces/`` (``file``, what ``agentlog trace`` reads). Several may be combined:
``AGENTLOG_OTEL_EXPORTER=file,otlp``.

Every exporter is wrapped in ``RedactingSpanExporter``: span names, attributes, events (the
exception message and stack trace ``record_exception`` stores) and status descriptions pass
through the process-wide redactor (``shared.runtime.redaction``) before they leave the process.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Link, Status

from shared.runtime.redaction import REDACTOR, Redactor
from shared.telemetry.exporters import JsonLinesSpanExporter, WorkflowTagger, trace_file

__all__ = [
    "EXPORTERS",
    "RedactingSpanExporter",
    "configure_tracing",
    "parse_exporters",
    "shutdown_tracing",
    "tracing_enabled",
]

log = logging.getLogger("agentlog.telemetry")

EXPORTERS = ("none", "console", "otlp", "file")
_OTLP_HTTP = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
_OTLP_GRPC = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"

_provider: TracerProvider | None = None


def parse_exporters(setting: str) -> tuple[str, ...]:
    """The exporters a comma-separated setting names (``none`` or empty: no exporter).

    Raises ValueError naming the choices for an unknown one.
    """
    names = tuple(dict.fromkeys(n.strip().lower() for n in setting.split(",") if n.strip()))
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise ValueError(
            f"unknown trace exporter {', '.join(map(repr, unknown))} in AGENTLOG_OTEL_EXPORTER;"
            f" expected a comma-separated list of {', '.join(EXPORTERS)}"
        )
    return tuple(name for name in names if name != "none")


def tracing_enabled(setting: str) -> bool:
    """Whether ``setting`` (``AGENTLOG_OTEL_EXPORTER``) exports spans anywhere."""
    return bool(parse_exporters(setting))


def configure_tracing(
    service_name: str, exporter: str = "none", *, state_dir: Path | None = None
) -> None:
    """Install the global tracer provider for ``service_name``, exporting via ``exporter``
    (a comma-separated list; ``file`` writes under ``state_dir``).

    Call once per process, from its composition root; later calls only log a warning. When a
    provider is already installed (a test harness, say) its processors are kept and the
    exporters are added to it.
    """
    global _provider
    names = parse_exporters(exporter)
    if _provider is not None:
        log.warning("tracing is already configured; ignoring configure_tracing(%r)", exporter)
        return
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        provider = current
    else:
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        trace.set_tracer_provider(provider)
    if names:
        provider.add_span_processor(WorkflowTagger())
    for name in names:
        span_exporter = _make_exporter(name, service_name, state_dir)
        if span_exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(RedactingSpanExporter(span_exporter)))
    _provider = provider


def shutdown_tracing() -> None:
    """Flush pending spans and stop exporting; call once, as the process exits."""
    global _provider
    if _provider is not None:
        provider, _provider = _provider, None
        provider.shutdown()


def _make_exporter(name: str, service: str, state_dir: Path | None) -> SpanExporter | None:
    if name == "console":
        return ConsoleSpanExporter()
    if name == "file":
        if state_dir is None:
            raise ValueError("the file trace exporter needs a state dir")
        return JsonLinesSpanExporter(trace_file(state_dir, service))
    if name == "otlp":
        # The standard protocol setting picks the exporter; http/protobuf is the spec's default
        # (and needs no gRPC runtime), the other one is the fallback when only it is installed.
        protocol = os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
        )
        modules = (
            (_OTLP_GRPC, _OTLP_HTTP) if protocol.startswith("grpc") else (_OTLP_HTTP, _OTLP_GRPC)
        )
        for module_name in modules:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            exporter: SpanExporter = module.OTLPSpanExporter()
            return exporter
        log.warning(
            "AGENTLOG_OTEL_EXPORTER=otlp but no opentelemetry-exporter-otlp package is "
            "installed; spans are not exported"
        )
    return None


class RedactingSpanExporter(SpanExporter):
    """Exports redacted copies of the spans through ``inner``; the spans themselves are kept.

    Wrapping the exporter rather than adding a processor: a processor's ``on_end`` sees a
    read-only span, while the exporter is the last step before the data leaves the process.
    """

    def __init__(self, inner: SpanExporter, redactor: Redactor = REDACTOR) -> None:
        self._inner = inner
        self._redactor = redactor

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([self.redact_span(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def redact_span(self, span: ReadableSpan) -> ReadableSpan:
        """A copy of ``span`` with every string in it redacted."""
        status = span.status
        if status.description:
            status = Status(status.status_code, self._redactor.redact(status.description))
        return ReadableSpan(
            name=self._redactor.redact(span.name),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=self._attributes(span.attributes),
            events=[
                Event(
                    self._redactor.redact(event.name),
                    self._attributes(event.attributes),
                    event.timestamp,
                )
                for event in span.events
            ],
            links=[Link(link.context, self._attributes(link.attributes)) for link in span.links],
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def _attributes(self, attributes: Mapping[str, Any] | None) -> dict[str, Any]:
        return {key: self._value(value) for key, value in (attributes or {}).items()}

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redactor.redact(value)
        if isinstance(value, bytes):
            text = value.decode("utf-8", "replace")
            redacted = self._redactor.redact(text)
            # Unchanged bytes stay as they were: decoding may not round-trip.
            return value if redacted == text else redacted.encode()
        if isinstance(value, Mapping):
            return self._attributes(value)
        if isinstance(value, Sequence):
            return tuple(self._value(item) for item in value)
        return value
