"""The embedded stack's state record and status model (pure: no processes, no files)."""

from __future__ import annotations

import pytest

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
