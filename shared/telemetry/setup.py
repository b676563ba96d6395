"""Process-wide OpenTelemetry tracing: one tracer provider per service, chosen by settings.

The transport creates its spans through the global API (``shared.transport.tracing``); this
module decides where they go: nowhere (``none``: spans and trace ids still exist, so context
still propagates through Kafka headers), stdout (``console``), or an OTLP collector (``otlp``,
only when an ``opentelemetry-exporter-otlp`` package is installed; otherwise a warning).
"""

from __future__ import annotations

import importlib
import logging

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

__all__ = ["EXPORTERS", "configure_tracing", "shutdown_tracing"]

log = logging.getLogger("agentlog.telemetry")

EXPORTERS = ("none", "console", "otlp")
# The HTTP exporter first: it needs no gRPC runtime.
_OTLP_MODULES = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
)

_provider: TracerProvider | None = None


def configure_tracing(service_name: str, exporter: str = "none") -> None:
    """Install the global tracer provider for ``service_name``, exporting via ``exporter``.

    Call once per process, from its composition root; later calls only log a warning. When a
    provider is already installed (a test harness, say) its processors are kept and the
    exporter is added to it.
    """
    global _provider
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown trace exporter {exporter!r}; expected one of {EXPORTERS}")
    if _provider is not None:
        log.warning("tracing is already configured; ignoring configure_tracing(%r)", exporter)
        return
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        provider = current
    else:
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        trace.set_tracer_provider(provider)
    span_exporter = _make_exporter(exporter)
    if span_exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(span_exporter))
    _provider = provider


def shutdown_tracing() -> None:
    """Flush pending spans and stop exporting; call once, as the process exits."""
    global _provider
    if _provider is not None:
        provider, _provider = _provider, None
        provider.shutdown()


def _make_exporter(name: str) -> SpanExporter | None:
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        for module_name in _OTLP_MODULES:
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
