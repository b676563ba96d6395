"""Reading exported spans back: the file exporter, the span tree, and `agentlog trace`."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from typer.testing import CliRunner

from shared.cli.app import app
from shared.runtime.redaction import Redactor
from shared.telemetry.exporters import JsonLinesSpanExporter, WorkflowTagger, workflow_scope
from shared.telemetry.setup import RedactingSpanExporter, parse_exporters
from shared.telemetry.spans import SpanRecord, render_span_tree, workflow_spans


def _span(span_id: str, parent: str | None, name: str, trace: str = "a" * 32) -> SpanRecord:
    """A 2 ms span; a root is the supervisor's and tagged with wf-1, the rest the writer's."""
    root = parent is None
    return SpanRecord(
        trace,
        span_id,
        parent,
        name,
        "agentlog-supervisor" if root else "agentlog-writer",
        start_ns=int(span_id, 16),
        end_ns=int(span_id, 16) + 2 * 10**6,
        attributes={"agentlog.workflow_id": "wf-1"} if root else {},
    )


def _write(state_dir: Path, service: str, spans: list[SpanRecord]) -> None:
    folder = state_dir / "traces"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{service}.jsonl").open("a") as out:
        out.writelines(span.to_json() + "\n" for span in spans)


def test_the_file_exporter_writes_tagged_redacted_spans(tmp_path: Path) -> None:
    """Spans of a workflow scope land in <state_dir>/traces/<service>.jsonl, tagged, redacted."""
    provider = TracerProvider(resource=Resource.create({"service.name": "agentlog-writer"}))
    provider.add_span_processor(WorkflowTagger())
    path = tmp_path / "traces" / "writer.jsonl"
    secret, redactor = f"sk-unit-{secrets.token_hex(16)}", Redactor()
    redactor.register_secret(secret)
    exporter = RedactingSpanExporter(JsonLinesSpanExporter(path), redactor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with workflow_scope("wf-9"), provider.get_tracer("t").start_as_current_span("step") as span:
        span.set_attribute("detail", f"key {secret}")
    provider.shutdown()
    (record,) = workflow_spans(tmp_path, "wf-9")
    assert record.name == "step"
    assert record.service == "agentlog-writer"
    assert record.workflow_id == "wf-9"
    assert secret not in path.read_text()


def test_workflow_spans_returns_whole_traces(tmp_path: Path) -> None:
    """An untagged span in a workflow's trace is part of it; another trace is not."""
    _write(tmp_path, "supervisor", [_span("01", None, "root")])
    _write(tmp_path, "writer", [_span("02", "01", "child"), _span("03", "09", "x", "b" * 32)])
    with (tmp_path / "traces" / "writer.jsonl").open("a") as out:
        out.write("{not json\n")  # a line cut short by a killed process
    names = [s.name for s in workflow_spans(tmp_path, "wf-1")]
    assert sorted(names) == ["child", "root"]
    assert workflow_spans(tmp_path, "wf-2") == []


def test_the_tree_draws_parents_children_and_gaps() -> None:
    """Children are drawn under their parents; a span whose parent is missing is marked."""
    lines = render_span_tree(
        [_span("01", None, "root"), _span("02", "01", "child"), _span("04", "03", "lost")]
    )
    assert lines[0].startswith(f"trace {'a' * 32}  (3 spans")
    assert lines[1].startswith("├ root  [supervisor]  2.0 ms")
    assert lines[2].startswith("│ └ child  [writer]")
    assert lines[3].startswith("└ lost")
    assert lines[3].endswith("(parent span not exported)")


def test_exporter_setting_is_a_comma_separated_list() -> None:
    """``file,otlp`` names two exporters, ``none`` none; an unknown one is refused."""
    assert parse_exporters("file, otlp") == ("file", "otlp")
    assert parse_exporters("none") == ()
    with pytest.raises(ValueError, match="jaeger"):
        parse_exporters("file,jaeger")


def test_trace_command_prints_the_tree(tmp_path: Path) -> None:
    """`agentlog trace` prints the workflow's tree, found by a prefix of its id."""
    _write(tmp_path, "supervisor", [_span("01", None, "decide goal")])
    result = CliRunner().invoke(app, ["trace", "wf-", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "decide goal  [supervisor]" in result.output


def test_trace_command_without_spans_says_how_to_turn_tracing_on(tmp_path: Path) -> None:
    """No spans for the workflow: one line naming the setting, and exit code 1."""
    result = CliRunner().invoke(app, ["trace", "wf-1", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "AGENTLOG_OTEL_EXPORTER=file" in result.output
