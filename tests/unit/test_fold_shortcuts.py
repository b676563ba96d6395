"""The fold's shortcuts give what the plain fold gives: a rollback started from the remembered
rebuild of its prefix, a clone that shares nothing mutable, the spend check per event class, and
the fast JSON decoder with its fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.events import (
    CritiqueIssued,
    DomainEvent,
    DraftWritten,
    PassagesRetrieved,
    TaskFailed,
    TaskScheduled,
    WorkflowRolledBack,
    WorkflowStarted,
    upcast,
)
from schemas.messages import CritiqueResult, DraftResult, SearchResult
from shared.domain.state import WorkflowState, replay_versioned, spends
from shared.eventstore._codec import decode_json, encode_json
from tests.unit.test_domain import WF, Run, _passages, _result
from tests.unit.test_time_travel_domain import _rollback, _version_of

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _rollback_heavy() -> list[tuple[int, DomainEvent]]:
    """A history that rolls back to the passages five times, and once to a later draft."""
    run = Run()
    run.start(goal="explain event sourcing")
    run.reply(_result(run.last_task(), SearchResult, passages=_passages(2)))
    target = _version_of(run, PassagesRetrieved)
    for i in range(5):
        draft = f"d{i} [doc#0]"
        run.reply(_result(run.last_task(), DraftResult, draft=draft, cited_source_ids=["doc#0"]))
        run.reply(_result(run.last_task(), CritiqueResult, verdict="revise", score=0.5))
        _rollback(run, target)
    run.reply(_result(run.last_task(), DraftResult, draft="e [doc#1]", cited_source_ids=["doc#1"]))
    _rollback(run, len(run.history))
    _rollback(run, target)
    return list(enumerate(run.history, start=1))


def _golden() -> list[list[tuple[int, DomainEvent]]]:
    streams: dict[str, list[tuple[int, DomainEvent]]] = {}
    for path in sorted(GOLDEN.glob("*.jsonl")):
        for raw in path.read_text().splitlines():
            line = json.loads(raw)
            event = upcast(line["type"], line["schema_version"], line["data"])
            streams.setdefault(line["stream_id"], []).append((line["version"], event))
    return list(streams.values())


def _assert_same_as_without_shortcut(events: list[tuple[int, DomainEvent]]) -> None:
    folded, plain = WorkflowState(WF), WorkflowState(WF)
    for version, event in events:
        folded.apply(event, version)
        plain._rebuilt = None  # every rollback folds its prefix again
        plain.apply(event, version)
        assert folded == plain, f"differs after version {version}"


def test_a_rollback_from_the_remembered_rebuild_equals_folding_the_prefix_again() -> None:
    """After every event of a rollback-heavy history, the state equals the one whose rollbacks
    all re-fold their prefix, and a replay from scratch ends in the same state."""
    events = _rollback_heavy()
    rollbacks = sum(isinstance(e, WorkflowRolledBack) for _, e in events)
    assert rollbacks == 7
    _assert_same_as_without_shortcut(events)
    state = replay_versioned(WF, events)
    assert state._rebuilt is not None
    assert state.abandoned_versions
    assert state == replay_versioned(WF, events)


def test_the_golden_histories_fold_alike_with_and_without_the_remembered_rebuild() -> None:
    """Every committed golden stream (rollbacks and forks included) folds to the same states."""
    streams = _golden()
    assert any(isinstance(e, WorkflowRolledBack) for s in streams for _, e in s)
    for events in streams:
        _assert_same_as_without_shortcut(events)


def test_a_clone_shares_no_mutable_part_with_its_original() -> None:
    """Changing a clone's tasks, lists, sets and counters leaves the original as it was."""
    state = replay_versioned(WF, _rollback_heavy()[:4])
    before = replay_versioned(WF, _rollback_heavy()[:4])
    twin = state.clone()
    assert twin == state
    assert type(twin) is WorkflowState
    next(iter(twin.tasks.values())).open = False
    twin.effective.pop()
    twin.abandoned_versions.add(99)
    twin.fresh_memory.clear()
    twin.spent.steps += 5
    for steps in twin.recent_steps.values():
        steps.clear()
    assert state == before
    assert twin != state


def test_spends_names_the_event_classes_that_record_what_a_step_spent() -> None:
    """Results carry provenance (TaskFailed optionally); decisions and markers do not."""
    assert spends(DraftWritten)
    assert spends(CritiqueIssued)
    assert spends(TaskFailed)
    assert not spends(TaskScheduled)
    assert not spends(WorkflowStarted)
    assert not spends(WorkflowRolledBack)


@pytest.mark.parametrize(
    "value",
    [
        {"f": 0.1, "big": 2**70, "neg": -(2**80), "tiny": 5e-324, "e": 1e300},
        {"nul": "\x00", "emoji": "🙂", "cjk": "事件", "nested": [{"a": [1, 2, {"b": None}]}]},
        {"lone": "\ud800 and \udfff", "\udc80key": True},
        {"deep": json.loads("[" * 600 + "]" * 600)},
    ],
    ids=["numbers", "text", "lone-surrogates", "deep-nesting"],
)
def test_decode_json_reads_what_encode_json_writes_as_json_loads_does(
    value: dict[str, object],
) -> None:
    """The fast decoder, or its json.loads fallback, returns exactly what was encoded."""
    text = encode_json(value)
    decoded = decode_json(text)
    assert decoded == value
    assert decoded == json.loads(text)
    assert list(decoded) == list(value)
