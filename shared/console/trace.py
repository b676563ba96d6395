"""The trace page's text: a workflow's spans as a tree, from the files the services export
(``shared.telemetry.spans``)."""

from __future__ import annotations

from pathlib import Path

from shared.telemetry.spans import render_span_tree, workflow_spans

__all__ = ["trace_lines"]


def trace_lines(state_dir: Path | None, workflow_id: str) -> tuple[list[str], str | None]:
    """The tree's lines, and a note when there is nothing to draw."""
    if state_dir is None:
        return [], "no state folder: the console does not know where traces are written"
    spans = workflow_spans(state_dir, workflow_id)
    if not spans:
        return [], (
            f"no spans for {workflow_id} under {state_dir / 'traces'}: run the services with "
            "AGENTLOG_OTEL_EXPORTER=file (docs/observability.md) to record them"
        )
    return render_span_tree(spans), None
