"""Queries over workflow streams: timelines, state at a version, diffs between runs.

The CLI, the Python client (``agentlog.Client``) and any web console call these and hold no
query logic of their own (cosmicpython's ``views.py``). Everything here reads; nothing decides.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from schemas.events import (
    CritiqueIssued,
    DomainEvent,
    DraftWritten,
    WorkflowCompleted,
    WorkflowForked,
    WorkflowRolledBack,
    upcast,
)
from shared.domain import WorkflowState, replay_versioned
from shared.domain.blobs import StreamValues, UnresolvedBlobError, has_blobs
from shared.domain.budget import effective_budget
from shared.domain.state import spends
from shared.eventstore import EventStore, RecordedEvent
from shared.readside.describe import describe

__all__ = [
    "Diff",
    "DiffStep",
    "Difference",
    "EventDetail",
    "NotFoundError",
    "TimelineRow",
    "describe",
    "diff",
    "fold",
    "read_state",
    "state_at",
    "status_summary",
    "timeline",
]


class NotFoundError(LookupError):
    """No such workflow, or no such version of it."""


# --- timeline ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventDetail:
    """What `history --full` adds to a row: the payload and who caused it."""

    event_id: str
    data: dict[str, Any]
    causation_id: str | None
    correlation_id: str | None
    principal: str | None
    actor: str | None
    provenance: dict[str, Any] | None
    #: A task's command as the relay sent it, when ``data`` holds it by reference (else None).
    sent: dict[str, Any] | None = None


@dataclass(frozen=True)
class TimelineRow:
    """One line of a workflow's history."""

    position: int
    version: int
    type: str
    agent: str
    summary: str
    time: str
    #: On a branch a later rollback abandoned: still in the log, no longer in effect.
    abandoned: bool = False
    #: The run the event belongs to (1, then one more after each rollback of a finished run).
    run: int = 1
    detail: EventDetail | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form: the row's fields, and with ``detail`` its fields too."""
        row = asdict(self)
        detail = row.pop("detail")
        return {**row, **(detail or {})}


def timeline(records: Sequence[RecordedEvent], full: bool = False) -> list[TimelineRow]:
    """Rows for a stream's records, in order; ``full`` adds each event's payload and metadata."""
    events = [upcast(r.type, r.schema_version, r.data) for r in records]
    state = WorkflowState(records[0].stream_id if records else "")
    runs = []
    for record, event in zip(records, events, strict=True):
        state.apply(event, record.version)
        runs.append(state.run)
    rows = []
    values = StreamValues()  # what the commands of the stream refer to
    for record, event, run in zip(records, events, runs, strict=True):
        agent, summary = describe(event)
        rows.append(
            TimelineRow(
                record.position,
                record.version,
                record.type,
                agent,
                summary,
                record.recorded_at.isoformat(timespec="milliseconds"),
                abandoned=record.version in state.abandoned_versions,
                run=run,
                detail=_detail(record, values) if full else None,
            )
        )
    return rows


def _sent(record: RecordedEvent, values: StreamValues) -> dict[str, Any] | None:
    command = record.data.get("command") if record.type == "TaskScheduled" else None
    sent = None
    if isinstance(command, dict) and has_blobs(command):
        with contextlib.suppress(UnresolvedBlobError):  # verify names it; show what is stored
            sent = values.expand(command)
    values.add(record.data)
    return sent


def _detail(record: RecordedEvent, values: StreamValues) -> EventDetail:
    meta = record.metadata
    provenance = record.data.get("provenance")
    return EventDetail(
        event_id=record.event_id,
        data=record.data,
        causation_id=meta.get("causation_id"),
        # Events recorded since 2026-12-01 leave it out: it is always their workflow's id.
        correlation_id=meta.get("correlation_id", record.stream_id),
        principal=meta.get("principal"),
        actor=meta.get("actor"),
        provenance=provenance if isinstance(provenance, dict) else None,
        sent=_sent(record, values),
    )


# --- state ---------------------------------------------------------------------------------


def fold(records: Sequence[RecordedEvent], workflow_id: str = "") -> WorkflowState:
    """The state after ``records`` (a stream, or its first versions)."""
    wf = records[0].stream_id if records else workflow_id
    return replay_versioned(
        wf, ((r.version, upcast(r.type, r.schema_version, r.data)) for r in records)
    )


async def read_state(store: EventStore, workflow_id: str) -> WorkflowState:
    """The workflow's current state, rebuilt from its events (status NEW when it has none)."""
    return fold(await store.read(workflow_id), workflow_id)


def status_summary(state: WorkflowState) -> dict[str, Any]:
    """What `agentlog status --json` prints: the workflow as it stands."""
    return {
        "workflow_id": state.workflow_id,
        "status": state.status.value,
        "version": state.version,
        "goal": state.goal,
        "constraints": state.constraints,
        "revision": state.revision if state.revision >= 0 else None,
        "manifest_version": state.manifest.manifest_version if state.manifest else 0,
        "memory_chars": state.memory_chars,
        "open_tasks": [
            {
                "task_id": t.task_id,
                "agent": t.agent,
                "attempt": t.attempt,
                "deadline": t.deadline.isoformat(),
            }
            for t in state.open_tasks
        ],
        "reason": state.outcome_reason,
        **controls_summary(state),
    }


def controls_summary(state: WorkflowState) -> dict[str, Any]:
    """Budget ledger, what the workflow waits for, cycles and pinned prompt versions."""
    budget = effective_budget(state)
    pending = state.pending
    return {
        "budget": {
            "spent": state.spent.ledger().model_dump() | {"tokens": state.spent.tokens},
            "limits": budget.model_dump(),
        },
        "waiting_for": None
        if pending is None
        else {
            "request_id": pending.request_id,
            "kind": pending.kind,
            "step": pending.step,
            "summary": pending.summary,
            "options": list(pending.options),
            "deadline": pending.deadline.isoformat(),
        },
        "cycles": dict(state.cycles),
        "strategies": dict(state.strategies),
        "prompts": dict(state.policy.prompts),
    }


async def state_at(store: EventStore, workflow_id: str, version: int) -> dict[str, Any]:
    """The workflow as it stood right after event ``version``, from events 1..version only.

    Raises NotFoundError for an unknown workflow or a version it has not reached.
    """
    if version < 1:
        raise NotFoundError(f"no version {version}: versions start at 1")
    records = await store.read(workflow_id, up_to_version=version)
    if not records:
        raise NotFoundError(f"no workflow {workflow_id!r}")
    if records[-1].version < version:
        raise NotFoundError(
            f"workflow {workflow_id} has {records[-1].version} events; no version {version}"
        )
    state = fold(records)
    last = records[-1]
    _, summary = describe(upcast(last.type, last.schema_version, last.data))
    prompt, completion = _tokens(state)
    return {
        "workflow_id": workflow_id,
        "version": version,
        "event": {
            "type": last.type,
            "summary": summary,
            "recorded_at": last.recorded_at.isoformat(timespec="milliseconds"),
        },
        "status": state.status.value,
        "run": state.run,
        "goal": state.goal,
        "constraints": state.constraints,
        "max_revisions": state.policy.max_revisions,
        "forked_from": state.forked_from,
        "forked_at_version": state.forked_at_version,
        "abandoned_versions": sorted(state.abandoned_versions),
        "open_tasks": [
            {
                "task_id": t.task_id,
                "agent": t.agent,
                "attempt": t.attempt,
                "deadline": t.deadline.isoformat(),
            }
            for t in state.open_tasks
        ],
        "passages": [
            {"source_id": p.source_id, "title": p.title, "score": p.score} for p in state.passages
        ],
        "drafts": [
            {
                "revision": d.revision,
                "words": len(d.draft.split()),
                "cited_source_ids": d.cited_source_ids,
                "draft": d.draft,
            }
            for d in state.drafts
        ],
        "critiques": [
            {"revision": c.revision, "verdict": c.verdict, "score": c.score, "feedback": c.feedback}
            for c in state.critiques
        ],
        "manifest_version": state.manifest.manifest_version if state.manifest else 0,
        # A fork's copied events count: they are the work its state is built on.
        "tokens": {"prompt": prompt, "completion": completion, "total": prompt + completion},
        "reason": state.outcome_reason,
    }


def _tokens(state: WorkflowState) -> tuple[int, int]:
    prompt = completion = 0
    for _, event in state.effective:
        if not spends(type(event)):
            continue
        provenance = event.provenance  # type: ignore[attr-defined]  # spends() checked it
        if provenance is not None:
            prompt += provenance.prompt_tokens
            completion += provenance.completion_tokens
    return prompt, completion


# --- diff ----------------------------------------------------------------------------------

# What differs between any two runs without changing what they did: ids, clocks, costs, and who
# asked (the same work submitted by two principals is the same work).
_INCIDENTAL = frozenset(
    {
        "task_id",
        "workflow_id",
        "deadline",
        "provenance",
        "started_at",
        "finished_at",
        "submitted_at",
        "rolled_back_at",
        "forked_at",
        "requested_by",
        "submitted_by",
    }
)


@dataclass(frozen=True)
class DiffStep:
    """One step of an effective history, as the diff compares it."""

    #: 1-based position in the effective history (rollback and fork markers not counted).
    step: int
    #: Stream version; 0 for an event a fork copied from its parent.
    version: int
    type: str
    summary: str
    #: The payload without task ids, deadlines, timestamps and provenance.
    payload: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Difference:
    """One aspect in which the two runs end up apart, side by side."""

    aspect: str
    a: str
    b: str


@dataclass(frozen=True)
class Diff:
    """Where two runs' effective histories part, and what differs from there on."""

    workflow_a: str
    workflow_b: str
    #: Steps the two effective histories share before they part.
    common: int
    #: Each side's first differing step (None: that history ends there; both None: no divergence).
    a: DiffStep | None
    b: DiffStep | None
    #: Where the first differing steps differ: "type", or dotted payload paths.
    changed: list[str]
    differences: list[Difference]

    @property
    def diverged(self) -> bool:
        """Whether the two effective histories differ at all."""
        return self.a is not None or self.b is not None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"diverged": self.diverged, **asdict(self)}


def diff(records_a: Sequence[RecordedEvent], records_b: Sequence[RecordedEvent]) -> Diff:
    """Compare two workflows' effective histories event by event.

    Events match when their type and their payload without incidental fields (task ids,
    deadlines, timestamps, provenance) match. A fork's copied events count as its own first
    events, so a fork and its parent share the steps up to the fork point.
    """
    state_a, state_b = fold(records_a), fold(records_b)
    steps_a, steps_b = _steps(state_a), _steps(state_b)
    common = min(len(steps_a), len(steps_b))
    for index, (x, y) in enumerate(zip(steps_a, steps_b, strict=False)):
        if (x.type, x.payload) != (y.type, y.payload):
            common = index
            break
    a = steps_a[common] if common < len(steps_a) else None
    b = steps_b[common] if common < len(steps_b) else None
    rest_a = [e for _, e in _facts(state_a)[common:]]
    rest_b = [e for _, e in _facts(state_b)[common:]]
    return Diff(
        workflow_a=state_a.workflow_id,
        workflow_b=state_b.workflow_id,
        common=common,
        a=a,
        b=b,
        changed=_changed(a, b),
        differences=_differences(state_a, state_b, rest_a, rest_b),
    )


def _changed(a: DiffStep | None, b: DiffStep | None) -> list[str]:
    if a is None or b is None:
        return []
    if a.type != b.type:
        return ["type"]
    return _paths(a.payload, b.payload, "")


def _paths(a: Any, b: Any, prefix: str) -> list[str]:
    """Dotted paths at which two JSON values differ (a whole list when its items differ)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            path
            for key in sorted(a.keys() | b.keys())
            for path in _paths(a.get(key), b.get(key), f"{prefix}{key}.")
        ]
    return [] if a == b else [prefix.rstrip(".")]


def _facts(state: WorkflowState) -> list[tuple[int, DomainEvent]]:
    """The effective history without rollback and fork markers."""
    return [
        (v, e) for v, e in state.effective if not isinstance(e, WorkflowRolledBack | WorkflowForked)
    ]


def _steps(state: WorkflowState) -> list[DiffStep]:
    return [
        DiffStep(
            step,
            version,
            event.event_type(),
            describe(event)[1],
            _normalised(event.model_dump(mode="json")),
        )
        for step, (version, event) in enumerate(_facts(state), start=1)
    ]


def _normalised(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items() if k not in _INCIDENTAL}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value


def _differences(
    a: WorkflowState, b: WorkflowState, rest_a: list[DomainEvent], rest_b: list[DomainEvent]
) -> list[Difference]:
    """Side by side, each aspect that differs: inputs first, then what happened after the fork
    in the road, then how each run ended."""
    aspects = [
        ("goal", a.goal, b.goal),
        ("constraints", "; ".join(a.constraints) or "none", "; ".join(b.constraints) or "none"),
        ("max revisions", str(a.policy.max_revisions), str(b.policy.max_revisions)),
        ("drafts", _drafts(rest_a), _drafts(rest_b)),
        ("critiques", _critiques(rest_a), _critiques(rest_b)),
        ("status", _status(a), _status(b)),
        ("run", str(a.run), str(b.run)),
        ("report", _report(a), _report(b)),
        ("citations", _citations(a), _citations(b)),
    ]
    return [Difference(name, x, y) for name, x, y in aspects if x != y]


def _drafts(events: list[DomainEvent]) -> str:
    drafts = [e for e in events if isinstance(e, DraftWritten)]
    return "; ".join(f"revision {d.revision}: {len(d.draft.split())} words" for d in drafts) or (
        "none"
    )


def _critiques(events: list[DomainEvent]) -> str:
    critiques = [e for e in events if isinstance(e, CritiqueIssued)]
    return "; ".join(f"revision {c.revision}: {c.verdict} ({c.score:.2f})" for c in critiques) or (
        "none"
    )


def _status(state: WorkflowState) -> str:
    reason = f": {state.outcome_reason}" if state.outcome_reason else ""
    return f"{state.status.value}{reason}"


def _completed(state: WorkflowState) -> WorkflowCompleted | None:
    return next((e for _, e in reversed(state.effective) if isinstance(e, WorkflowCompleted)), None)


def _report(state: WorkflowState) -> str:
    done = _completed(state)
    return done.report if done is not None else "none"


def _citations(state: WorkflowState) -> str:
    done = _completed(state)
    return ", ".join(c.source_id for c in done.citations) if done is not None else "none"
