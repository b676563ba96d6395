"""The ``file`` exporter, and the span processor that tags each span with its workflow.

Spans go to ``<state_dir>/traces/<service>.jsonl`` as ``SpanRecord`` JSON lines (after
redaction: the setup wraps every exporter in ``RedactingSpanExporter``). Each batch is one
``write`` to a file opened for appending, so replicas of one service may share the file.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from opentelemetry import context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import format_span_id, format_trace_id

from shared.telemetry.spans import TRACES_DIR, WORKFLOW_ATTRIBUTE, SpanRecord

__all__ = [
    "JsonLinesSpanExporter",
    "WorkflowTagger",
    "current_workflow",
    "span_record",
    "trace_file",
    "workflow_scope",
]

_WORKFLOW_KEY = context.create_key("agentlog.workflow_id")


def trace_file(state_dir: Path, service: str) -> Path:
    """Where the ``file`` exporter of ``service`` (``agentlog-writer`` or ``writer``) writes."""
    return state_dir / TRACES_DIR / f"{service.removeprefix('agentlog-')}.jsonl"


@contextlib.contextmanager
def workflow_scope(workflow_id: str | None) -> Iterator[None]:
    """Spans started inside belong to ``workflow_id`` (the tagger copies it onto them)."""
    if not workflow_id:
        yield
        return
    token = context.attach(context.set_value(_WORKFLOW_KEY, workflow_id))
    try:
        yield
    finally:
        context.detach(token)


def current_workflow(ctx: Context | None = None) -> str | None:
    """The workflow id ``workflow_scope`` set in ``ctx`` (default: the current context)."""
    value = context.get_value(_WORKFLOW_KEY, ctx)
    return value if isinstance(value, str) else None


class WorkflowTagger(SpanProcessor):
    """Sets ``agentlog.workflow_id`` on every span started inside a ``workflow_scope``.

    A processor rather than an attribute at each call site: the transport's PRODUCER spans and
    any library's spans are tagged too, without knowing about workflows.
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        workflow_id = current_workflow(parent_context) or current_workflow()
        if workflow_id is not None:
            span.set_attribute(WORKFLOW_ATTRIBUTE, workflow_id)


def span_record(span: ReadableSpan) -> SpanRecord:
    """The exported form of a finished SDK span."""
    ctx = span.context
    parent = span.parent
    service = span.resource.attributes.get("service.name", "?")
    return SpanRecord(
        trace_id=format_trace_id(ctx.trace_id) if ctx else "0" * 32,
        span_id=format_span_id(ctx.span_id) if ctx else "0" * 16,
        parent_id=format_span_id(parent.span_id) if parent is not None else None,
        name=span.name,
        service=str(service),
        kind=span.kind.name,
        start_ns=span.start_time or 0,
        end_ns=span.end_time or 0,
        attributes={k: list(v) if isinstance(v, tuple) else v for k, v in span.attributes.items()}
        if span.attributes
        else {},
        status=span.status.status_code.name,
        status_description=span.status.description,
        links=tuple(
            (format_trace_id(link.context.trace_id), format_span_id(link.context.span_id))
            for link in span.links
        ),
    )


class JsonLinesSpanExporter(SpanExporter):
    """Appends each span as one JSON line to ``path`` (created with its folder)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        text = "".join(span_record(span).to_json() + "\n" for span in spans)
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as out:
                    out.write(text)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing is held open between batches."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
