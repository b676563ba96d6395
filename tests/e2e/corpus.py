"""A generated research corpus for end-to-end runs: small, deterministic, designed per goal."""

from __future__ import annotations

from pathlib import Path

__all__ = ["MANY_GOALS", "REVISE_GOAL", "write_corpus"]

# The critic sends the first draft back ("simply" is banned), so the writer works at least twice.
REVISE_GOAL = ("Explain how replay rebuilds workflow state", ["avoid: simply"])
# Goals the corpus answers, for runs with several workflows in flight.
MANY_GOALS = [
    REVISE_GOAL,
    ("Summarize telemetry tracing sampling spans exporters and collectors", []),
    ("Why does replay matter when auditing a workflow", []),
    ("Describe how trace context propagation works on Kafka records", []),
    ("Explain how baggage and metrics relate to spans", ["must mention: collector"]),
]

_REPLAY = """# Replaying workflows

Replay rebuilds a workflow's state by folding its recorded events in order. Because the
supervisor's decisions are a pure function of that history, replay simply reproduces them.

An auditor can replay any run from its event log and compare the decisions it yields with the
ones that were recorded. Replay never calls a model again: results were recorded as events.

## Workflow state

A workflow's state holds its goal, the passages found, every draft and critique, the current
manifest and the tasks still open. The supervisor rebuilds this state from the stream before
each decision, so no state lives only in memory and a restarted supervisor loses nothing.

## Why replay matters

Replay turns every run into evidence. When a report looks wrong, replay shows which passages
the writer saw, which critique forced a revision and when the workflow state changed. Because
events are immutable, replay of the same stream always rebuilds the same workflow state.

## Rollback

Rollback appends a marker event that points at an earlier version; nothing is deleted, so the
audit trail keeps both the abandoned branch and the rollback itself.
"""

_TELEMETRY_TOPICS = [
    ("Tracing", "Distributed tracing follows a request across services using W3C trace context."),
    ("Sampling", "Sampling decides which traces are kept; head sampling decides at the root span."),
    ("Spans", "A span records one operation with its start, end, attributes and parent span."),
    ("Exporters", "Exporters ship finished spans to a collector such as an OTLP endpoint."),
    ("Baggage", "Baggage carries key-value pairs across service boundaries with the trace."),
    ("Metrics", "Metrics aggregate measurements such as latency histograms per service."),
    ("Logs", "Logs correlated with trace ids let an operator jump from a span to its log lines."),
    ("Collectors", "A collector receives telemetry, processes it in pipelines and exports it."),
    ("Propagation", "Propagation injects and extracts trace context into message headers."),
    ("Kafka tracing", "Kafka tracing carries the traceparent header on every record produced."),
]


def write_corpus(root: Path) -> Path:
    """Write the corpus under ``root`` and return the folder."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "replay.md").write_text(_REPLAY)
    for i, (title, lead) in enumerate(_TELEMETRY_TOPICS):
        body = " ".join(
            f"{lead} In telemetry pipelines, observability data about {title.lower()} "
            f"is collected, enriched and stored for analysis (note {n})."
            for n in range(6)
        )
        (root / f"telemetry-{i:02d}.md").write_text(f"# Telemetry: {title}\n\n{body}\n")
    return root
