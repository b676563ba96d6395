"""Telemetry: OpenTelemetry tracer provider setup (the transport carries the trace context)."""

from shared.telemetry.setup import configure_tracing, shutdown_tracing

__all__ = ["configure_tracing", "shutdown_tracing"]
