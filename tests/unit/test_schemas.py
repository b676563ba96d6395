"""The message models enforce the contract: sizes, closed field sets, defaults, naming."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import (
    MESSAGE_TYPES,
    TOPICS,
    ApprovalDecision,
    CancelWorkflow,
    Citation,
    CompletionEvent,
    CompletionEventV1,
    CritiqueResult,
    CritiqueTask,
    DraftResult,
    ForkWorkflow,
    GoalSubmitted,
    ManifestResult,
    MemoryItem,
    Message,
    Passage,
    PauseScheduling,
    Provenance,
    RollbackWorkflow,
    SearchResult,
    SearchTask,
    SummarizeTask,
    TaskFailure,
    UnknownMessageTypeError,
    WriteTask,
    decode_message,
    encode_message,
    model_for,
)
from schemas.events import RecordedEventMessage

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DEADLINE = NOW + timedelta(seconds=30)
PROVENANCE = Provenance(provider="offline", model="offline-1", strategy_version="v1")
TASK: dict[str, Any] = {"workflow_id": "wf-1", "task_id": "t-1", "attempt": 1}
TYPE_NAME = re.compile(r"^agentlog\.(?P<area>[a-z]+)\.(?P<name>[a-z][a-z_-]*)\.v(?P<n>[1-9]\d*)$")


def _samples() -> list[Message]:
    """One valid instance of every registered message type, optional fields filled in."""
    passage = Passage(source_id="doc-1", title="Doc", text="Kafka keeps order per partition.")
    return [
        GoalSubmitted(
            goal="Explain event sourcing", constraints=["cite sources"], submitted_at=NOW
        ),
        SearchTask(**TASK, deadline=DEADLINE, query="event sourcing"),
        WriteTask(**TASK, deadline=DEADLINE, goal="Explain it", passages=[passage]),
        CritiqueTask(**TASK, deadline=DEADLINE, goal="Explain it", draft="# Draft"),
        SummarizeTask(
            **TASK,
            deadline=DEADLINE,
            goal="Explain it",
            items=[MemoryItem(kind="goal", ref="goal", text="Explain it")],
            budget_chars=500,
            manifest_version=1,
        ),
        SearchResult(**TASK, provenance=PROVENANCE, passages=[passage]),
        DraftResult(**TASK, provenance=PROVENANCE, draft="# Report", cited_source_ids=["doc-1"]),
        CritiqueResult(
            **TASK, provenance=PROVENANCE, verdict="approved", score=0.9, checks={"cites": True}
        ),
        ManifestResult(
            **TASK, provenance=PROVENANCE, manifest="m", manifest_version=1, source_chars=10
        ),
        TaskFailure(**TASK, agent="writer", provenance=PROVENANCE, error="model timed out"),
        CancelWorkflow(workflow_id="wf-1"),
        RollbackWorkflow(workflow_id="wf-1", to_version=4, reason="redo the draft"),
        PauseScheduling(paused=True, reason="provider outage"),
        ApprovalDecision(workflow_id="wf-1", decision="grant", add_tokens=1000),
        ForkWorkflow(
            workflow_id="wf-2", parent_workflow_id="wf-1", at_version=4, constraints=["avoid: x"]
        ),
        CompletionEvent(
            workflow_id="wf-1",
            outcome="completed",
            goal="Explain it",
            report="# Report",
            citations=[Citation(source_id="doc-1")],
            last_version=9,
            finished_at=NOW,
        ),
        CompletionEventV1(
            workflow_id="wf-1",
            outcome="failed",
            goal="Explain it",
            reason="cancelled by operator",
            last_version=4,
            finished_at=NOW,
        ),
        RecordedEventMessage(
            workflow_id="wf-1",
            position=1,
            version=1,
            type="WorkflowStarted",
            schema_version=1,
            data={"goal": "Explain it"},
            recorded_at=NOW,
        ),
    ]


SAMPLES = _samples()


def _id(message: Message) -> str:
    return message.TYPE


def test_samples_cover_every_registered_type() -> None:
    """The fixtures below exercise each message type the registry knows, once."""
    assert sorted(sample.TYPE for sample in SAMPLES) == sorted(MESSAGE_TYPES)


@pytest.mark.parametrize("size", [2, 4_001])
def test_goal_outside_size_limits_is_rejected(size: int) -> None:
    """A goal shorter than 3 or longer than 4,000 characters fails validation."""
    with pytest.raises(ValidationError, match="goal"):
        GoalSubmitted(goal="x" * size)


def test_goal_at_size_limit_is_accepted() -> None:
    """A goal of exactly 4,000 characters is within the contract."""
    assert len(GoalSubmitted(goal="x" * 4_000).goal) == 4_000


def test_oversized_constraint_is_rejected() -> None:
    """A constraint longer than 500 characters fails validation."""
    with pytest.raises(ValidationError, match="constraints"):
        GoalSubmitted(goal="Explain it", constraints=["x" * 501])


def test_too_many_constraints_are_rejected() -> None:
    """More than 20 constraints fail validation."""
    with pytest.raises(ValidationError, match="constraints"):
        GoalSubmitted(goal="Explain it", constraints=["c"] * 21)


def test_workflow_id_must_be_an_identifier() -> None:
    """Workflow ids with spaces or over 128 characters are rejected (they become keys)."""
    for bad in ("wf 1", "", "w" * 129):
        with pytest.raises(ValidationError, match="workflow_id"):
            GoalSubmitted(workflow_id=bad, goal="Explain it")


@pytest.mark.parametrize("message", SAMPLES, ids=_id)
def test_unknown_fields_are_rejected(message: Message) -> None:
    """Every message forbids fields its schema does not declare (extra=forbid)."""
    payload = message.model_dump(mode="json") | {"surprise": 1}
    with pytest.raises(ValidationError, match="surprise"):
        type(message).model_validate(payload)


@pytest.mark.parametrize("message", SAMPLES, ids=_id)
def test_json_round_trip_through_registry(message: Message) -> None:
    """encode_message then decode_message by TYPE gives back an equal message."""
    decoded = decode_message(message.TYPE, encode_message(message))
    assert type(decoded) is type(message)
    assert decoded == message


@pytest.mark.parametrize("message", SAMPLES, ids=_id)
def test_messages_are_immutable(message: Message) -> None:
    """Messages are frozen: a field cannot be reassigned after validation."""
    field = next(iter(type(message).model_fields))
    with pytest.raises(ValidationError, match="frozen"):
        setattr(message, field, None)


def test_goal_defaults() -> None:
    """A goal with only its text gets a fresh wf- id and empty optional fields."""
    first, second = GoalSubmitted(goal="Explain it"), GoalSubmitted(goal="Explain it")
    assert first.workflow_id.startswith("wf-")
    assert first.workflow_id != second.workflow_id
    assert first.constraints == []
    assert (first.requested_by, first.max_revisions, first.submitted_at) == (None, None, None)


def test_task_and_result_defaults() -> None:
    """Task commands and results default their agent, limits, revision and retryability."""
    task = SearchTask(**TASK, deadline=DEADLINE, query="q")
    assert (task.agent, task.limit) == ("search", 8)
    write = WriteTask(**TASK, deadline=DEADLINE, goal="Explain it")
    assert (write.agent, write.revision, write.passages, write.feedback) == ("writer", 0, [], [])
    assert (write.previous_draft, write.manifest) == (None, None)
    failure = TaskFailure(**TASK, agent="critic", provenance=PROVENANCE, error="e")
    assert failure.retryable is True
    assert (PROVENANCE.prompt_tokens, PROVENANCE.tokens_estimated) == (0, True)


def test_control_and_completion_defaults() -> None:
    """Cancel has a default reason; a failed completion needs no report or citations."""
    assert CancelWorkflow(workflow_id="wf-1").reason == "cancelled by operator"
    failed = CompletionEvent(
        workflow_id="wf-1",
        outcome="failed",
        goal="Explain it",
        reason="budget",
        last_version=3,
        finished_at=NOW,
    )
    assert (failed.report, failed.citations, failed.revisions, failed.manifest_version) == (
        None,
        [],
        0,
        0,
    )


def test_task_deadline_must_carry_a_timezone() -> None:
    """A naive deadline is rejected: deadlines are compared across machines."""
    with pytest.raises(ValidationError, match="deadline"):
        SearchTask(**TASK, deadline=datetime(2026, 1, 1), query="q")


def test_decoding_an_unknown_type_raises() -> None:
    """An unregistered ce_type raises UnknownMessageTypeError, a ValueError, naming it."""
    with pytest.raises(UnknownMessageTypeError, match=r"agentlog\.nope\.v1"):
        decode_message("agentlog.nope.v1", b"{}")
    with pytest.raises(ValueError, match="unknown message type"):
        model_for("agentlog.goal.submitted.v2")


def test_decoding_an_invalid_payload_raises_validation_error() -> None:
    """A known type with a payload that breaks its schema raises ValidationError."""
    with pytest.raises(ValidationError):
        decode_message(GoalSubmitted.TYPE, b'{"goal": "no", "colour": "red"}')


@pytest.mark.parametrize(("message_type", "model"), sorted(MESSAGE_TYPES.items()))
def test_type_names_follow_convention(message_type: str, model: type[Message]) -> None:
    """Each type is agentlog.<area>.<name>.v<N>, registered under its own TYPE, N == VERSION."""
    match = TYPE_NAME.match(message_type)
    assert match, f"{message_type!r} does not match agentlog.<area>.<name>.v<N>"
    assert message_type == model.TYPE
    assert int(match["n"]) == model.VERSION


def test_every_topic_carries_registered_types() -> None:
    """Each message type a topic declares decodes through the registry."""
    for topic in TOPICS:
        unknown = [name for name in topic.message_types if name not in MESSAGE_TYPES]
        assert not unknown, f"topic {topic.name} declares unregistered types {unknown}"


def test_every_registered_type_travels_on_a_topic() -> None:
    """No message type is registered without a topic that carries it."""
    carried = {name for topic in TOPICS for name in topic.message_types}
    assert set(MESSAGE_TYPES) == carried


def test_wire_validation_is_strict_about_types() -> None:
    """A number sent as a string is refused on the wire, not silently coerced."""
    import json

    from pydantic import ValidationError

    from schemas.messages import SearchTask

    payload: dict[str, object] = {
        "workflow_id": "wf-1",
        "task_id": "search-1",
        "attempt": "1",
        "deadline": "2026-01-01T00:00:00Z",
        "query": "replay",
    }
    with pytest.raises(ValidationError, match="attempt"):
        SearchTask.model_validate_json(json.dumps(payload))
    payload["attempt"] = 1
    assert SearchTask.model_validate_json(json.dumps(payload)).deadline.tzinfo is not None


def test_a_cancelled_workflow_has_its_own_outcome_from_completion_v2() -> None:
    """Completion v2 accepts outcome 'cancelled'; v1 (still decodable) never did."""
    cancelled = CompletionEvent(
        workflow_id="wf-1", outcome="cancelled", goal="Explain it", last_version=3, finished_at=NOW
    )
    assert cancelled.TYPE.endswith(".v2")
    with pytest.raises(ValidationError):
        CompletionEventV1.model_validate(cancelled.model_dump())


def test_goal_and_control_text_refuse_nul_characters() -> None:
    """A NUL in a goal, constraint or cancel reason is refused at the door (Postgres cannot
    store it downstream)."""
    with pytest.raises(ValidationError):
        GoalSubmitted(goal="explain\u0000 replay")
    with pytest.raises(ValidationError):
        GoalSubmitted(goal="explain replay", constraints=["avoid: \u0000"])
    with pytest.raises(ValidationError):
        CancelWorkflow(workflow_id="wf-1", reason="stop\u0000")
    assert GoalSubmitted(goal="explain replay").goal == "explain replay"
