"""Pure, deterministic workflow logic: state from history, decisions from state and input.

Nothing here performs I/O or reads a clock; time and identity come in as inputs, so replaying
a recorded history always yields the same state and the same decisions.
"""

from shared.domain.admission import Refusal, admit
from shared.domain.decide import decide
from shared.domain.outcome import completion_for
from shared.domain.state import (
    TERMINAL_EVENTS,
    TaskState,
    WorkflowState,
    WorkflowStatus,
    replay,
    replay_versioned,
    status_after,
)
from shared.domain.statuses import FLEET_STREAM, STATUS_NEUTRAL_EVENTS
from shared.domain.triggers import (
    CancelRequested,
    DecisionReceived,
    ForkRequested,
    GoalReceived,
    ResultReceived,
    ResumeRequested,
    RollbackRequested,
    Tick,
    Trigger,
)

__all__ = [
    "FLEET_STREAM",
    "STATUS_NEUTRAL_EVENTS",
    "TERMINAL_EVENTS",
    "CancelRequested",
    "DecisionReceived",
    "ForkRequested",
    "GoalReceived",
    "Refusal",
    "ResultReceived",
    "ResumeRequested",
    "RollbackRequested",
    "TaskState",
    "Tick",
    "Trigger",
    "WorkflowState",
    "WorkflowStatus",
    "admit",
    "completion_for",
    "decide",
    "replay",
    "replay_versioned",
    "status_after",
]
