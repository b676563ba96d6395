"""Telemetry: OpenTelemetry tracer provider setup (the transport carries the trace context)."""

from shared.telemetry.setup import RedactingSpanExporter, configure_tracing, shutdown_tracing

__all__ = ["RedactingSpanExporter", "configure_tracing", "shutdown_tracing"]
