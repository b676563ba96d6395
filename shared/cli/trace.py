"""`agentlog trace WORKFLOW_ID`: the span tree of a workflow, from the spans the services wrote.

Reads ``<state_dir>/traces/*.jsonl`` (the ``file`` exporter), so it needs neither Jaeger nor a
running stack. Exit 1 when no span names the workflow (tracing off, or nothing exported yet);
exit 2 for a prefix that names several workflows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shared.cli.stack import load_cli_settings
from shared.cli.workflows import _AsJson, _error, _WorkflowId, console
from shared.domain import FLEET_STREAM
from shared.telemetry.spans import SpanRecord, read_spans, render_span_tree, workflow_spans

__all__ = ["trace"]

_AMBIGUOUS_SHOWN = 5


def trace(
    workflow_id: _WorkflowId,
    as_json: _AsJson = False,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Where the services wrote traces/ (default: the stack's state dir)."),
    ] = None,
) -> None:
    """Print the span tree of a workflow (service, span, duration, key attributes)."""
    folder = state_dir or load_cli_settings().state_dir
    spans = workflow_spans(folder, workflow_id)
    if not spans:
        resolved = _by_prefix(folder, workflow_id)
        spans = workflow_spans(folder, resolved) if resolved else []
    if not spans:
        _error(
            f"no spans for workflow {workflow_id} in {folder / 'traces'}: tracing is off or "
            "the services have not flushed yet (set AGENTLOG_OTEL_EXPORTER=file on the services "
            "and run the workflow again)"
        )
        raise typer.Exit(1)
    if as_json:
        for span in spans:
            print(span.to_json())
        return
    for line in render_span_tree(spans):
        # Plain print: span names may hold brackets that rich would read as markup.
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _by_prefix(folder: Path, prefix: str) -> str | None:
    """The one traced workflow whose id starts with ``prefix`` (exit 2 when several do)."""
    ids = sorted({w for span in read_spans(folder) if (w := _workflow(span)) is not None})
    matches = [w for w in ids if w.startswith(prefix)]
    if len(matches) > 1:
        shown = ", ".join(matches[:_AMBIGUOUS_SHOWN])
        more = len(matches) - _AMBIGUOUS_SHOWN
        _error(
            f"{prefix!r} names {len(matches)} traced workflows: {shown}"
            + (f" and {more} more" if more > 0 else "")
        )
        raise typer.Exit(2)
    return matches[0] if matches else None


def _workflow(span: SpanRecord) -> str | None:
    value = span.workflow_id
    # A span of the fleet-wide stream or an unkeyed message is no workflow's.
    return value if value and value != FLEET_STREAM else None
