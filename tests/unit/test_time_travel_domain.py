"""Rollback and fork in the pure domain: effective history, abandoned branches, stale results,
task ids that never repeat, and runs that supersede each other."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas.events import (
    DomainEvent,
    ForkedEvent,
    PassagesRetrieved,
    TaskScheduled,
    WorkflowCompleted,
    WorkflowForked,
    WorkflowRolledBack,
)
from schemas.messages import (
    CritiqueResult,
    DraftResult,
    ForkWorkflow,
    RollbackWorkflow,
    SearchResult,
)
from shared.domain import (
    ForkRequested,
    ResultReceived,
    RollbackRequested,
    WorkflowStatus,
    admit,
    completion_for,
    decide,
    replay,
)
from tests.unit.test_domain import WF, Run, _passages, _result, _types


def _completed(run: Run) -> None:
    run.start(goal="explain event sourcing")
    run.reply(_result(run.last_task(), SearchResult, passages=_passages(2)))
    run.reply(_result(run.last_task(), DraftResult, draft="a [doc#0]", cited_source_ids=["doc#0"]))
    run.reply(_result(run.last_task(), CritiqueResult, verdict="approved", score=1.0))


def _version_of(run: Run, event_type: type[DomainEvent]) -> int:
    return next(i for i, e in enumerate(run.history, 1) if isinstance(e, event_type))


def _rollback(run: Run, to_version: int) -> list[DomainEvent]:
    run.now += timedelta(seconds=1)
    return run.feed(
        RollbackRequested(
            RollbackWorkflow(workflow_id=WF, to_version=to_version, reason="redo"), run.now, "alice"
        )
    )


def test_rollback_after_completion_reuses_passages_and_runs_the_writer_again() -> None:
    """Rolling a completed workflow back to just after its passages appends WorkflowRolledBack
    and a new writer task (no search); finishing again is run 2, superseding run 1."""
    run = Run()
    _completed(run)
    first_end = len(run.history)
    target = _version_of(run, PassagesRetrieved)
    events = _rollback(run, target)
    assert _types(events) == ["WorkflowRolledBack", "TaskScheduled"]
    assert isinstance(events[0], WorkflowRolledBack)
    assert events[0].requested_by == "alice"
    assert run.last_task().agent == "writer"
    state = run.state
    assert state.status is WorkflowStatus.RUNNING
    assert state.run == 2
    assert state.passages
    assert not state.drafts
    assert state.abandoned_versions == set(range(target + 1, first_end + 1))
    run.reply(_result(run.last_task(), DraftResult, draft="b [doc#1]", cited_source_ids=["doc#1"]))
    done = run.reply(_result(run.last_task(), CritiqueResult, verdict="approved", score=1.0))
    assert isinstance(done[-1], WorkflowCompleted)
    completion = completion_for(run.state, done[-1], lambda v: f"event-{v}")
    assert completion is not None
    assert (completion.run, completion.supersedes) == (2, f"event-{first_end}")
    assert completion.report == "b [doc#1]"
    assert len(run.history) > first_end  # nothing was removed


def test_a_late_result_of_an_abandoned_task_is_stale_and_ignored() -> None:
    """A result for a task that was in flight when the rollback happened changes nothing and is
    not refused as unknown."""
    run = Run()
    run.start(goal="explain event sourcing")
    run.reply(_result(run.last_task(), SearchResult, passages=_passages(2)))
    in_flight = run.last_task()
    _rollback(run, _version_of(run, PassagesRetrieved))
    fresh = run.last_task()
    assert fresh.task_id != in_flight.task_id
    late = _result(in_flight, DraftResult, draft="late [doc#0]", cited_source_ids=["doc#0"])
    trigger = ResultReceived(late, run.now)
    assert admit(run.state, trigger, principal_agent="writer") is None
    assert decide(run.state, trigger) == []
    assert run.state.tasks[fresh.task_id].open


def test_task_ids_never_repeat_whatever_rollbacks_happen() -> None:
    """Task ids derive from the stream version that scheduled them, so repeated rollbacks
    schedule only ids never seen before in the stream."""
    run = Run()
    run.start(goal="explain event sourcing")
    run.reply(_result(run.last_task(), SearchResult, passages=_passages(2)))
    target = _version_of(run, PassagesRetrieved)
    for _ in range(3):
        run.reply(
            _result(run.last_task(), DraftResult, draft="d [doc#0]", cited_source_ids=["doc#0"])
        )
        _rollback(run, target)
    ids = [e.task_id for e in run.history if isinstance(e, TaskScheduled) and e.attempt == 1]
    assert len(ids) == len(set(ids))


def test_rollbacks_repeat_and_may_target_an_effective_branch_not_an_abandoned_one() -> None:
    """A second rollback may target a version effective after the first one; a version on an
    abandoned branch is refused."""
    run = Run()
    _completed(run)
    passages_at = _version_of(run, PassagesRetrieved)
    abandoned = passages_at + 2
    _rollback(run, passages_at)
    run.reply(_result(run.last_task(), DraftResult, draft="b [doc#1]", cited_source_ids=["doc#1"]))
    draft_b = len(run.history)
    refusal = admit(
        run.state,
        RollbackRequested(
            RollbackWorkflow(workflow_id=WF, to_version=abandoned, reason="x"), run.now
        ),
        principal_agent=None,
    )
    assert refusal is not None
    assert "abandoned" in refusal.detail
    events = _rollback(run, draft_b)
    assert _types(events) == ["WorkflowRolledBack", "TaskScheduled"]
    assert run.last_task().agent == "critic"
    assert [d.draft for d in run.state.drafts] == ["b [doc#1]"]


def test_a_terminal_event_or_the_head_cannot_be_a_rollback_target() -> None:
    """Rolling back to the event that ended a run, or to the current version, is refused."""
    run = Run()
    _completed(run)
    for version in (len(run.history), len(run.history) + 3):
        trigger = RollbackRequested(
            RollbackWorkflow(workflow_id=WF, to_version=version, reason="x"), run.now
        )
        assert admit(run.state, trigger, principal_agent=None) is not None


def test_replay_of_a_history_with_rollbacks_rebuilds_the_same_state() -> None:
    """Folding the recorded history from scratch gives the state the decisions were made on."""
    run = Run()
    _completed(run)
    _rollback(run, _version_of(run, PassagesRetrieved))
    assert replay(WF, list(run.history)) == run.state


def _fork(parent: Run, at: int, **overrides: object) -> Run:
    state = replay(WF, parent.history[:at])
    history = tuple(
        ForkedEvent(
            version=v, type=e.event_type(), schema_version=e.VERSION, data=e.model_dump(mode="json")
        )
        for v, e in state.effective
    )
    fork = Run()
    fork.now = parent.now
    request = ForkWorkflow.model_validate(
        {"workflow_id": WF, "parent_workflow_id": "wf-parent", "at_version": at, **overrides}
    )
    fork.feed(ForkRequested(request, history, fork.now, "alice"))
    return fork


def test_a_fork_starts_from_the_parents_state_with_overrides_and_schedules_no_search() -> None:
    """A fork after the search copies the parent's history, applies its constraint override and
    schedules the writer; its state is self-contained."""
    parent = Run()
    _completed(parent)
    fork = _fork(parent, _version_of(parent, PassagesRetrieved), constraints=["max words: 50"])
    assert _types(fork.history) == ["WorkflowForked", "TaskScheduled"]
    forked = fork.history[0]
    assert isinstance(forked, WorkflowForked)
    assert forked.parent_workflow_id == "wf-parent"
    state = fork.state
    assert state.forked_from == "wf-parent"
    assert state.constraints == ["max words: 50"]
    assert state.passages == parent.state.passages
    task = fork.last_task()
    assert task.agent == "writer"
    assert task.command["workflow_id"] == WF
    assert task.command["constraints"] == ["max words: 50"]


def test_a_fork_of_a_fork_keeps_both_histories_and_the_latest_overrides() -> None:
    """Forking a fork carries the grandparent's copied events and the first fork's overrides."""
    parent = Run()
    _completed(parent)
    child = _fork(parent, _version_of(parent, PassagesRetrieved), max_revisions=1)
    child.reply(
        _result(child.last_task(), DraftResult, draft="c [doc#0]", cited_source_ids=["doc#0"])
    )
    grandchild = _fork(child, len(child.history))
    state = grandchild.state
    assert state.policy.max_revisions == 1
    assert [d.draft for d in state.drafts] == ["c [doc#0]"]
    assert grandchild.last_task().agent == "critic"


@pytest.mark.parametrize("status_after_run", ["completed"])
def test_results_after_the_end_change_nothing_but_a_rollback_does(status_after_run: str) -> None:
    """The status machine: a finished workflow ignores results and accepts a rollback."""
    run = Run()
    _completed(run)
    assert run.state.status.value == status_after_run
    stray = _result(run.last_task(), CritiqueResult, verdict="approved", score=1.0)
    assert decide(run.state, ResultReceived(stray, run.now)) == []
    assert _rollback(run, 1)[0].event_type() == "WorkflowRolledBack"
    assert run.last_task().agent == "search"
