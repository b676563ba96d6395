"""What the supervisor refuses before deciding: conflicts, strangers and unknown workflows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.events import WorkflowPolicy
from schemas.messages import (
    CancelWorkflow,
    CritiqueResult,
    DraftResult,
    GoalSubmitted,
    Passage,
    Provenance,
    SearchResult,
)
from schemas.topics import CONTROL, GOALS, RESULTS
from services.supervisor.handler import Supervisor
from shared.auth import Principal, Role
from shared.domain import (
    CancelRequested,
    GoalReceived,
    ResultReceived,
    WorkflowState,
    admit,
    decide,
    replay,
)
from shared.eventstore import InMemoryEventStore
from shared.transport import Delivery, RejectedError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = WorkflowPolicy()
PROVENANCE = Provenance(provider="p", model="m", strategy_version="1")


def _started(goal: GoalSubmitted) -> WorkflowState:
    state = replay(goal.workflow_id, [])
    for event in decide(state, GoalReceived(goal, POLICY, NOW)):
        state.apply(event)
    return state


def test_the_same_goal_again_is_admitted_and_a_different_one_is_a_conflict() -> None:
    """Re-submitting an identical goal is idempotent; another goal under the same id is a
    conflict."""
    goal = GoalSubmitted(workflow_id="wf-1", goal="explain replay", constraints=["max words: 300"])
    state = _started(goal)
    assert admit(state, GoalReceived(goal, POLICY, NOW), principal_agent=None) is None
    other = goal.model_copy(update={"goal": "explain rollback"})
    refusal = admit(state, GoalReceived(other, POLICY, NOW), principal_agent=None)
    assert refusal is not None
    assert refusal.reason == "conflict"
    looser = goal.model_copy(update={"constraints": ["max words: 900"]})
    assert admit(state, GoalReceived(looser, POLICY, NOW), principal_agent=None) is not None


def test_a_goal_with_an_unknown_constraint_is_invalid() -> None:
    """A constraint the critic cannot check is refused, naming the known forms."""
    goal = GoalSubmitted(workflow_id="wf-2", goal="explain replay", constraints=["max word: 50"])
    refusal = admit(replay("wf-2", []), GoalReceived(goal, POLICY, NOW), principal_agent=None)
    assert refusal is not None
    assert refusal.reason == "invalid"
    assert "max word: 50" in refusal.detail
    assert "max words: N" in refusal.detail


def test_results_for_unknown_workflows_and_tasks_are_refused() -> None:
    """A result for a workflow or task that never existed is refused, not ignored."""
    result = SearchResult(workflow_id="wf-3", task_id="search-2", attempt=1, provenance=PROVENANCE)
    stranger = admit(replay("wf-3", []), ResultReceived(result, NOW), principal_agent="search")
    assert stranger is not None
    assert stranger.reason == "unknown-workflow"
    state = _started(GoalSubmitted(workflow_id="wf-3", goal="explain replay"))
    made_up = result.model_copy(update={"task_id": "search-99"})
    refusal = admit(state, ResultReceived(made_up, NOW), principal_agent="search")
    assert refusal is not None
    assert refusal.reason == "invalid"


def test_a_result_from_another_agent_than_the_task_was_given_to_is_unauthorized() -> None:
    """The writer cannot answer the search task, whatever the result claims."""
    state = _started(GoalSubmitted(workflow_id="wf-4", goal="explain replay"))
    [task] = state.open_tasks
    forged = CritiqueResult(
        workflow_id="wf-4",
        task_id=task.task_id,
        attempt=1,
        provenance=PROVENANCE,
        verdict="approved",
        score=1.0,
    )
    refusal = admit(state, ResultReceived(forged, NOW), principal_agent="critic")
    assert refusal is not None
    assert refusal.reason == "unauthorized"
    genuine = SearchResult(
        workflow_id="wf-4", task_id=task.task_id, attempt=1, provenance=PROVENANCE
    )
    assert admit(state, ResultReceived(genuine, NOW), principal_agent="search") is None
    assert admit(state, ResultReceived(genuine, NOW), principal_agent="writer") is not None


def test_a_cancel_for_an_unknown_workflow_is_refused() -> None:
    """Cancelling a workflow that does not exist is refused."""
    cancel = CancelRequested(CancelWorkflow(workflow_id="wf-5"), NOW, "operator")
    refusal = admit(replay("wf-5", []), cancel, principal_agent=None)
    assert refusal is not None
    assert refusal.reason == "unknown-workflow"


def _delivery(message: object, topic: str, principal: Principal | None) -> Delivery:
    workflow_id = getattr(message, "workflow_id", "")
    return Delivery(
        message=message,  # type: ignore[arg-type]  # any Message subclass
        topic=topic,
        partition=0,
        offset=0,
        key=workflow_id,
        ce_id=f"{topic}-{id(message)}",
        ce_type="t",
        ce_source="test",
        ce_time=None,
        ce_subject=workflow_id,
        principal=principal,
    )


class _Clock:
    def now(self) -> datetime:
        return NOW


async def test_the_supervisor_records_the_verified_signer_not_the_claimed_one() -> None:
    """WorkflowStarted.submitted_by and WorkflowCancelled.requested_by come from the verified
    principal; the message's own requested_by is only a claim."""
    store = InMemoryEventStore()
    supervisor = Supervisor(store, _Clock(), POLICY)
    upstream = Principal("billing-system", Role.UPSTREAM)
    goal = GoalSubmitted(workflow_id="wf-6", goal="explain replay", requested_by="the CEO")
    await supervisor.handle(_delivery(goal, GOALS, upstream))
    cancel = CancelWorkflow(workflow_id="wf-6", requested_by="somebody else")
    await supervisor.handle(_delivery(cancel, CONTROL, Principal("alice", Role.OPERATOR)))
    records = await store.read("wf-6")
    assert records[0].data["submitted_by"] == "billing-system"
    assert records[0].data["requested_by"] == "the CEO"
    assert records[-1].type == "WorkflowCancelled"
    assert records[-1].data["requested_by"] == "alice"
    assert records[-1].metadata["principal"] == "alice"


async def test_the_supervisor_rejects_without_recording_anything() -> None:
    """A refused message raises RejectedError with its reason and appends nothing."""
    store = InMemoryEventStore()
    supervisor = Supervisor(store, _Clock(), POLICY)
    writer = Principal("writer", Role.AGENT, "writer")
    goal = GoalSubmitted(workflow_id="wf-7", goal="explain replay")
    await supervisor.handle(_delivery(goal, GOALS, None))
    before = await store.read("wf-7")
    [search_task] = [r for r in before if r.type == "TaskScheduled"]
    forged = DraftResult(
        workflow_id="wf-7",
        task_id=search_task.data["task_id"],
        attempt=1,
        provenance=PROVENANCE,
        draft="# forged",
    )
    with pytest.raises(RejectedError) as refused:
        await supervisor.handle(_delivery(forged, RESULTS, writer))
    assert refused.value.reason == "unauthorized"
    conflicting = goal.model_copy(update={"goal": "something else entirely"})
    with pytest.raises(RejectedError) as conflict:
        await supervisor.handle(_delivery(conflicting, GOALS, None))
    assert conflict.value.reason == "conflict"
    orphan = SearchResult(
        workflow_id="wf-none",
        task_id="search-2",
        attempt=1,
        provenance=PROVENANCE,
        passages=[Passage(source_id="d", text="t")],
    )
    with pytest.raises(RejectedError) as unknown:
        await supervisor.handle(
            _delivery(orphan, RESULTS, Principal("search", Role.AGENT, "search"))
        )
    assert unknown.value.reason == "unknown-workflow"
    assert await store.read("wf-7") == before
    assert await store.read("wf-none") == []
