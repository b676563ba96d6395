"""The embedded stack's state record and status model, and how the CLI finds a stack's state
dir (files in a temp dir only; no processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.settings import (
    clear_stack_pointer,
    find_state_dir,
    stack_pointer_file,
    write_stack_pointer,
)
from shared.stack import ComponentStatus, StackStatus
from shared.stack.state import ProcessRecord, StackState

_STATE = StackState(
    postgres=ProcessRecord(pid=10, port=5544, started_at=1.5),
    broker=ProcessRecord(pid=11, port=9099, started_at=2.0),
)


def test_state_round_trips_through_json() -> None:
    """A state parsed from its own JSON equals the original."""
    assert StackState.from_json(_STATE.to_json()) == _STATE


def test_state_json_carries_the_keys_settings_read() -> None:
    """stack.json has the database_url and kafka_bootstrap that shared.settings falls back on."""
    raw = _STATE.to_json()

    assert raw["database_url"] == "postgresql://postgres@127.0.0.1:5544/agentlog"
    assert raw["kafka_bootstrap"] == "127.0.0.1:9099"


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"postgres": {"pid": 1, "port": 2, "started_at": 3.0}},
        {"postgres": {"pid": "1", "port": 2, "started_at": 3.0}, "broker": {}},
        {**_STATE.to_json(), "broker": {"pid": 1, "port": 2, "started_at": True}},
    ],
)
def test_malformed_state_is_rejected(raw: object) -> None:
    """Anything but a complete state record raises ValueError (read as 'no stack')."""
    with pytest.raises(ValueError, match=r"must be|needs"):
        StackState.from_json(raw)


def test_stack_runs_only_when_both_components_are_healthy() -> None:
    """`running` needs a healthy Postgres and a healthy broker."""
    up = ComponentStatus(healthy=True, pid=1, port=2, detail="accepting connections")
    down = ComponentStatus(healthy=False, pid=None, port=None, detail="not running")

    assert StackStatus(up, up, "db", "kafka").running
    assert not StackStatus(up, down, "db", None).running
    assert StackStatus(down, up, None, "kafka").to_json()["running"] is False


# --- finding the stack's state dir -------------------------------------------------------


@pytest.fixture
def pointer_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A private XDG_STATE_HOME, so the user's own pointer is neither read nor written."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg"


def _stack_dir(project: Path) -> Path:
    state_dir = project / ".agentlog"
    state_dir.mkdir(parents=True)
    (state_dir / "stack.json").write_text(json.dumps(_STATE.to_json()))
    return state_dir


def test_nearest_running_stack_above_the_working_dir_is_found(
    pointer_home: Path, tmp_path: Path
) -> None:
    """Walking up from a subdirectory finds the project's .agentlog with a stack.json."""
    state_dir = _stack_dir(tmp_path / "project")
    deep = tmp_path / "project" / "a" / "b"
    deep.mkdir(parents=True)
    assert find_state_dir(deep) == state_dir


def test_pointer_finds_the_last_stack_from_anywhere(pointer_home: Path, tmp_path: Path) -> None:
    """With no stack above, the pointer written by `stack up` names it; not for `up` itself."""
    state_dir = _stack_dir(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert find_state_dir(elsewhere) is None
    write_stack_pointer(state_dir)
    assert stack_pointer_file() == pointer_home / "agentlog" / "current-stack"
    assert find_state_dir(elsewhere) == state_dir
    assert find_state_dir(elsewhere, use_pointer=False) is None


def test_pointer_to_a_stopped_stack_is_ignored(pointer_home: Path, tmp_path: Path) -> None:
    """A pointer whose state dir has no stack.json any more finds nothing."""
    state_dir = _stack_dir(tmp_path / "project")
    write_stack_pointer(state_dir)
    (state_dir / "stack.json").unlink()
    assert find_state_dir(tmp_path) is None


def test_clearing_the_pointer_spares_another_stacks(pointer_home: Path, tmp_path: Path) -> None:
    """`stack down` of one stack removes the pointer only when it names that stack."""
    first = _stack_dir(tmp_path / "first")
    second = _stack_dir(tmp_path / "second")
    write_stack_pointer(second)
    clear_stack_pointer(first)
    assert find_state_dir(tmp_path) == second
    clear_stack_pointer(second)
    assert not (pointer_home / "agentlog" / "current-stack").exists()
