"""The read side of tracing: spans the services exported to files, and their tree as text.

The ``file`` exporter (``shared.telemetry.exporters``) writes one JSON object per span to
``<state_dir>/traces/<service>.jsonl``. This module reads them back without the OpenTelemetry
SDK, so ``agentlog trace`` and the web console can show a workflow's spans cheaply.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "TRACES_DIR",
    "WORKFLOW_ATTRIBUTE",
    "SpanRecord",
    "read_spans",
    "render_span_tree",
    "workflow_spans",
]

#: Every span a workflow causes carries its id under this attribute.
WORKFLOW_ATTRIBUTE = "agentlog.workflow_id"
TRACES_DIR = "traces"

# Attributes worth a glance in the tree, in the order shown, with their short labels.
_SHOWN: tuple[tuple[str, str], ...] = (
    ("agentlog.trigger", "trigger"),
    ("agentlog.events", "events"),
    ("agentlog.event_type", "event"),
    ("agentlog.task_id", "task"),
    ("agentlog.attempt", "attempt"),
    ("agentlog.result", "result"),
    ("gen_ai.request.model", "model"),
    ("gen_ai.provider.name", "provider"),
    ("gen_ai.usage.input_tokens", "in"),
    ("gen_ai.usage.output_tokens", "out"),
    ("agentlog.prompt.version", "prompt"),
    ("agentlog.approval.outcome", "outcome"),
    ("error.type", "error"),
)


@dataclass(frozen=True)
class SpanRecord:
    """One finished span as exported: ids in lowercase hex, times in ns since the epoch."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    kind: str = "INTERNAL"
    start_ns: int = 0
    end_ns: int = 0
    attributes: Mapping[str, Any] = field(default_factory=dict)
    status: str = "UNSET"
    status_description: str | None = None
    #: ``(trace_id, span_id)`` of each span this one links to (a fork's parent trace, say).
    links: tuple[tuple[str, str], ...] = ()

    @property
    def duration_ms(self) -> float:
        """How long the span lasted, in milliseconds."""
        return max(0, self.end_ns - self.start_ns) / 1e6

    @property
    def workflow_id(self) -> str | None:
        """The workflow the span belongs to, when it was tagged with one."""
        value = self.attributes.get(WORKFLOW_ATTRIBUTE)
        return value if isinstance(value, str) else None

    def to_json(self) -> str:
        """One JSON line, as the ``file`` exporter writes it."""
        return json.dumps(
            {
                "trace_id": self.trace_id,
                "span_id": self.span_id,
                "parent_id": self.parent_id,
                "name": self.name,
                "service": self.service,
                "kind": self.kind,
                "start_ns": self.start_ns,
                "end_ns": self.end_ns,
                "attributes": dict(self.attributes),
                "status": self.status,
                "status_description": self.status_description,
                "links": [list(link) for link in self.links],
            },
            default=str,
        )

    @classmethod
    def from_json(cls, line: str) -> SpanRecord:
        """The record a JSON line describes; raises ValueError (or KeyError) when it is not one."""
        data = json.loads(line)
        return cls(
            trace_id=str(data["trace_id"]),
            span_id=str(data["span_id"]),
            parent_id=data.get("parent_id"),
            name=str(data["name"]),
            service=str(data.get("service", "?")),
            kind=str(data.get("kind", "INTERNAL")),
            start_ns=int(data.get("start_ns", 0)),
            end_ns=int(data.get("end_ns", 0)),
            attributes=dict(data.get("attributes") or {}),
            status=str(data.get("status", "UNSET")),
            status_description=data.get("status_description"),
            links=tuple((str(t), str(s)) for t, s in data.get("links") or ()),
        )


def read_spans(state_dir: Path) -> list[SpanRecord]:
    """Every span in ``<state_dir>/traces/*.jsonl``; unreadable lines (a write cut short by a
    killed process) are skipped."""
    spans: list[SpanRecord] = []
    folder = state_dir / TRACES_DIR
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else ():
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                spans.append(SpanRecord.from_json(line))
            except (ValueError, KeyError, TypeError):
                continue
    return spans


def workflow_spans(state_dir: Path, workflow_id: str) -> list[SpanRecord]:
    """The spans of every trace that touched ``workflow_id``, in start order.

    Whole traces, not only the tagged spans: a span started before the workflow was known
    (a message's receipt) still belongs to its tree.
    """
    spans = read_spans(state_dir)
    traces = {span.trace_id for span in spans if span.workflow_id == workflow_id}
    return sorted((s for s in spans if s.trace_id in traces), key=lambda s: s.start_ns)


def render_span_tree(spans: Sequence[SpanRecord]) -> list[str]:
    """Text lines drawing each trace as a tree: service, name, duration, key attributes.

    A span whose parent was not exported (a service killed before it flushed) is drawn as a
    root and marked, so a gap is visible rather than hidden.
    """
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    lines: list[str] = []
    for trace_id, members in sorted(by_trace.items(), key=lambda kv: _first_start(kv[1])):
        start, end = _first_start(members), max(s.end_ns for s in members)
        lines.append(f"trace {trace_id}  ({len(members)} spans, {(end - start) / 1e6:.1f} ms)")
        ids = {span.span_id for span in members}
        children: dict[str | None, list[SpanRecord]] = defaultdict(list)
        for span in members:
            parent = span.parent_id if span.parent_id in ids else None
            children[parent].append(span)
        roots = sorted(children[None], key=lambda s: s.start_ns)
        for index, root in enumerate(roots):
            lines.extend(_draw(root, children, "", index == len(roots) - 1))
    return lines


def _first_start(spans: Iterable[SpanRecord]) -> int:
    return min(span.start_ns for span in spans)


def _draw(
    span: SpanRecord,
    children: Mapping[str | None, list[SpanRecord]],
    prefix: str,
    last: bool,
) -> Iterator[str]:
    # Iterative over the depth would be safer for huge trees, but a workflow's causal chain is
    # tens of hops deep, far below the recursion limit.
    # Two columns a level: a workflow's causal chain is deep, and the lines must stay readable.
    branch = "└ " if last else "├ "
    # Only a root can have a parent outside the trace's spans: one that was never exported.
    orphan = "  (parent span not exported)" if not prefix and span.parent_id else ""
    yield f"{prefix}{branch}{_describe(span)}{orphan}"
    kids = sorted(children.get(span.span_id, ()), key=lambda s: s.start_ns)
    inner = prefix + ("  " if last else "│ ")
    for index, child in enumerate(kids):
        yield from _draw(child, children, inner, index == len(kids) - 1)


def _describe(span: SpanRecord) -> str:
    service = span.service.removeprefix("agentlog-")
    parts = [f"{span.name}  [{service}]  {span.duration_ms:.1f} ms"]
    shown = [
        f"{label}={_short(span.attributes[key])}" for key, label in _SHOWN if key in span.attributes
    ]
    if span.status == "ERROR":
        shown.append(f"ERROR {span.status_description or ''}".rstrip())
    if span.links:
        shown.append("links=" + ",".join(trace[:8] for trace, _ in span.links))
    return "  ".join(parts + shown)


def _short(value: Any) -> str:
    text = ",".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
