"""The drift check: committed golden histories replay with no drift under today's code, and a
changed decision rule is reported at the first event it would decide differently."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.events import TaskScheduled
from shared.domain.blobs import has_blobs
from shared.domain.replayer import find_drift
from shared.domain.state import WorkflowState
from tests.golden.generate import SCENARIOS, record_all

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
# The module, not the ``decide`` function the package re-exports under the same name.
decide_module = importlib.import_module("shared.domain.decide")


@dataclass(frozen=True)
class _Line:
    stream_id: str
    version: int
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]


def _streams(path: Path) -> dict[str, list[_Line]]:
    streams: dict[str, list[_Line]] = {}
    for raw in path.read_text().splitlines():
        line = _Line(**json.loads(raw))
        streams.setdefault(line.stream_id, []).append(line)
    return streams


def test_every_scenario_has_a_committed_golden_history() -> None:
    """Each scenario of the generator has its JSON Lines file under tests/golden."""
    assert {p.stem for p in GOLDEN.glob("*.jsonl")} == set(SCENARIOS)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_golden_histories_replay_without_drift(scenario: str) -> None:
    """Today's decisions reproduce every recorded decision of the golden history."""
    streams = _streams(GOLDEN / f"{scenario}.jsonl")
    assert streams
    for workflow_id, lines in streams.items():
        assert find_drift(workflow_id, lines) is None, workflow_id


@pytest.mark.parametrize("scenario", ["revise_and_compact", "forked"])
def test_histories_recorded_with_whole_commands_replay_without_drift(scenario: str) -> None:
    """Histories recorded before commands held texts by reference (tests/golden/whole_commands)
    agree with today's decisions, which send the same commands by reference."""
    streams = _streams(GOLDEN / "whole_commands" / f"{scenario}.jsonl")
    whole = [
        line.data["command"]
        for lines in streams.values()
        for line in lines
        if line.type == "TaskScheduled"
    ]
    assert whole
    assert not any(has_blobs(command) for command in whole)
    for workflow_id, lines in streams.items():
        assert find_drift(workflow_id, lines) is None, workflow_id


def test_today_s_commands_hold_recorded_texts_by_reference() -> None:
    """The committed histories' write commands hold their passages by reference."""
    streams = _streams(GOLDEN / "revise_and_compact.jsonl")
    writes = [
        line.data["command"]
        for lines in streams.values()
        for line in lines
        if line.type == "TaskScheduled" and line.data["agent"] == "writer"
    ]
    assert writes
    assert all(has_blobs(command["passages"]) for command in writes)


def test_the_golden_histories_cover_every_kind_of_decision() -> None:
    """Between them, the golden files hold every kind of decision the replayer must rebuild."""
    types = {
        line.type
        for path in GOLDEN.glob("*.jsonl")
        for lines in _streams(path).values()
        for line in lines
    }
    assert {
        "TaskFailed",
        "TaskTimedOut",
        "WorkflowCancelled",
        "MemoryCompacted",
        "WorkflowRolledBack",
        "WorkflowForked",
        "WorkflowFailed",
        "BudgetExhausted",
        "ApprovalRejected",
        "ApprovalGranted",
        "CycleDetected",
        "Backtracked",
        "EscalatedToHuman",
    } <= types


def test_histories_without_decision_ids_are_grouped_by_causation() -> None:
    """Older rows (no decision id or trigger in their metadata) still replay without drift."""
    for workflow_id, lines in _streams(GOLDEN / "retries_and_timeouts.jsonl").items():
        legacy = [
            _Line(
                line.stream_id,
                line.version,
                line.type,
                line.schema_version,
                line.data,
                {k: v for k, v in line.metadata.items() if k not in {"decision_id", "trigger"}},
            )
            for line in lines
        ]
        assert find_drift(workflow_id, legacy) is None


def test_a_changed_decision_rule_is_reported_where_it_first_decides_differently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Giving the critic a longer deadline than recorded drifts at the first critic task."""
    original = decide_module.schedule_critique

    def slower_critic(state: WorkflowState, now: Any) -> TaskScheduled:
        scheduled: TaskScheduled = original(state, now)
        return scheduled.model_copy(update={"deadline": scheduled.deadline + timedelta(seconds=5)})

    monkeypatch.setattr(decide_module, "schedule_critique", slower_critic)
    [(workflow_id, lines)] = _streams(GOLDEN / "revise_and_compact.jsonl").items()
    drift = find_drift(workflow_id, lines)
    assert drift is not None
    first_critic = next(
        line.version
        for line in lines
        if line.type == "TaskScheduled" and line.data["agent"] == "critic"
    )
    assert drift.version == first_critic
    assert drift.recorded != drift.decided or "otherwise" in drift.detail


async def test_freshly_recorded_histories_agree_with_the_committed_ones(tmp_path: Path) -> None:
    """Recording the scenarios again yields the same decisions as the committed files (ids and
    decision ids aside), so the golden files are not stale."""
    await record_all(tmp_path)
    for path in GOLDEN.glob("*.jsonl"):
        committed = _streams(path)
        fresh = _streams(tmp_path / path.name)
        assert committed.keys() == fresh.keys()
        for stream_id, lines in committed.items():
            assert [(x.version, x.type, x.data) for x in lines] == [
                (x.version, x.type, x.data) for x in fresh[stream_id]
            ]
