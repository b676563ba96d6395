"""Agent controls in the pure domain: budgets, approvals, cycles with backtracking, fallback
and escalation, and the operator-wide pause."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from schemas.controls import Budget
from schemas.events import (
    ApprovalRequested,
    TaskScheduled,
    WorkflowCompleted,
    WorkflowPolicy,
)
from schemas.messages import (
    ApprovalDecision,
    CritiqueResult,
    DraftResult,
    GoalSubmitted,
    Provenance,
    SearchResult,
    TaskFailure,
)
from shared.domain import (
    DecisionReceived,
    GoalReceived,
    ResultReceived,
    ResumeRequested,
    Tick,
    WorkflowStatus,
    admit,
    decide,
)
from tests.unit.test_domain import WF, Run, _passages, _result, _types

COSTLY = Provenance(
    provider="test", model="t", strategy_version="1", prompt_tokens=600, completion_tokens=600
)


def _decide(run: Run, decision: str = "grant", **fields: Any) -> list[Any]:
    run.now += timedelta(seconds=1)
    answer = ApprovalDecision(workflow_id=WF, decision=decision, **fields)  # type: ignore[arg-type]
    return run.feed(DecisionReceived(answer, run.now, "alice"))


def _pending(run: Run) -> ApprovalRequested:
    pending = run.state.pending
    assert pending is not None
    return pending


def test_a_step_that_would_pass_the_token_budget_waits_for_a_human_who_adds_budget() -> None:
    """When the tokens are spent, the next step is not scheduled: BudgetExhausted, then
    PENDING_APPROVAL; a grant adds tokens and schedules the step."""
    run = Run(WorkflowPolicy(budget=Budget(max_tokens=1000)))
    run.start(goal="explain event sourcing")
    events = run.reply(
        SearchResult(
            workflow_id=WF,
            task_id=run.last_task().task_id,
            attempt=1,
            provenance=COSTLY,
            passages=_passages(2),
        )
    )
    assert _types(events) == ["PassagesRetrieved", "BudgetExhausted", "ApprovalRequested"]
    assert run.state.status is WorkflowStatus.PENDING_APPROVAL
    assert _pending(run).kind == "budget"
    assert run.state.spent.tokens == 1200
    granted = _decide(run, add_tokens=5000, comment="ok")
    assert _types(granted) == ["ApprovalGranted", "TaskScheduled"]
    assert run.last_task().agent == "writer"
    assert run.state.status.value == "running"


def test_a_denied_budget_request_fails_the_workflow_with_the_reason() -> None:
    """Denying the budget request fails the workflow, naming the approver and reason."""
    run = Run(WorkflowPolicy(budget=Budget(max_steps=1)))
    run.start(goal="explain event sourcing")
    run.reply(_result(run.last_task(), SearchResult, passages=_passages(2)))
    events = _decide(run, "deny", comment="too expensive")
    assert _types(events) == ["ApprovalDenied", "WorkflowFailed"]
    assert run.state.status is WorkflowStatus.FAILED
    assert "alice" in str(run.state.outcome_reason)
    assert "too expensive" in str(run.state.outcome_reason)


def test_no_decision_before_the_deadline_fails_the_workflow() -> None:
    """A tick after the approval deadline fails the waiting workflow."""
    run = Run(WorkflowPolicy(budget=Budget(max_steps=1), approval_timeout_s=60))
    run.start(goal="explain event sourcing")
    run.reply(_result(run.last_task(), SearchResult, passages=_passages(2)))
    assert run.feed(Tick(run.now + timedelta(seconds=30))) == []
    events = run.feed(Tick(run.now + timedelta(seconds=61)))
    assert _types(events) == ["WorkflowFailed"]


def test_a_gated_delivery_waits_and_an_approval_delivers_without_rerunning_work() -> None:
    """With delivery gated, an approved draft waits in PENDING_APPROVAL; the approval completes
    the workflow with that same report and schedules no task."""
    run = Run()
    run.start(goal="explain event sourcing", approval_required=["deliver"])
    run.reply(_result(run.last_task(), SearchResult, passages=_passages(2)))
    run.reply(_result(run.last_task(), DraftResult, draft="r [doc#0]", cited_source_ids=["doc#0"]))
    waiting = run.reply(_result(run.last_task(), CritiqueResult, verdict="approved", score=1.0))
    assert _types(waiting) == ["CritiqueIssued", "ApprovalRequested"]
    assert _pending(run).step == "deliver"
    done = _decide(run)
    assert _types(done) == ["ApprovalGranted", "WorkflowCompleted"]
    assert isinstance(done[-1], WorkflowCompleted)
    assert done[-1].report == "r [doc#0]"


def test_decisions_for_nothing_pending_or_another_request_are_rejected_and_change_nothing() -> None:
    """A decision when nothing waits, or naming another request, is recorded as rejected."""
    run = Run()
    run.start(goal="explain event sourcing", approval_required=["write"])
    assert _types(_decide(run)) == ["ApprovalRejected"]
    run.reply(_result(run.last_task(), SearchResult, passages=_passages(2)))
    assert run.state.status is WorkflowStatus.PENDING_APPROVAL
    wrong = _decide(run, request_id="approval-v99")
    assert _types(wrong) == ["ApprovalRejected"]
    assert run.state.status is WorkflowStatus.PENDING_APPROVAL
    assert _types(_decide(run)) == ["ApprovalGranted", "TaskScheduled"]


def _same_draft(run: Run, text: str = "same [doc#0]") -> list[Any]:
    task = run.last_task()
    if task.agent == "critic":
        run.reply(_result(task, CritiqueResult, verdict="revise", score=0.2, feedback=["longer"]))
        task = run.last_task()
    assert task.agent == "writer"
    return run.reply(_result(task, DraftResult, draft=text, cited_source_ids=["doc#0"]))


def test_the_same_draft_three_times_backtracks_to_another_strategy_then_escalates() -> None:
    """Three identical drafts for identical input: CycleDetected and Backtracked (the loop's
    drafts hidden, strategy 1); a second cycle escalates to a human."""
    run = Run(WorkflowPolicy(max_revisions=10))
    run.start(goal="explain event sourcing")
    run.reply(_result(run.last_task(), SearchResult, passages=_passages(2)))
    _same_draft(run)
    _same_draft(run)
    _same_draft(run)
    events = _same_draft(run)
    assert _types(events) == ["DraftWritten", "CycleDetected", "Backtracked", "TaskScheduled"]
    task = run.last_task()
    assert task.command["strategy"] == 1
    assert task.command["previous_draft"] is None
    assert task.command["feedback"] == []
    for _ in range(3):
        events = _same_draft(run, "other [doc#0]")
    assert _types(events) == [
        "DraftWritten",
        "CycleDetected",
        "EscalatedToHuman",
        "ApprovalRequested",
    ]
    assert _pending(run).kind == "escalation"
    retried = _decide(run, option="retry")
    assert _types(retried) == ["ApprovalGranted", "Backtracked", "TaskScheduled"]
    assert run.last_task().command["strategy"] == 2


def test_a_failing_task_moves_to_the_fallback_model_then_escalates() -> None:
    """After its attempts, a task is reassigned to the fallback profile; when that fails too,
    a human may retry it."""
    run = Run(WorkflowPolicy(max_attempts=1, fallbacks=["writer"]))
    run.start(goal="explain event sourcing")
    run.reply(_result(run.last_task(), SearchResult, passages=_passages(2)))
    failed = run.reply(_result(run.last_task(), TaskFailure, agent="writer", error="overloaded"))
    assert _types(failed) == ["TaskFailed", "TaskReassigned", "TaskScheduled"]
    assert run.last_task().command["profile"] == "fallback"
    again = run.reply(_result(run.last_task(), TaskFailure, agent="writer", error="overloaded"))
    assert _types(again) == ["TaskFailed", "EscalatedToHuman", "ApprovalRequested"]
    assert _pending(run).options == ["retry", "abort"]
    retried = _decide(run, option="retry")
    assert _types(retried) == ["ApprovalGranted", "TaskScheduled"]
    aborted_run = Run(WorkflowPolicy(max_attempts=1))
    aborted_run.start(goal="explain event sourcing")
    aborted_run.reply(
        _result(aborted_run.last_task(), TaskFailure, agent="search", error="index down")
    )
    assert _types(_decide(aborted_run, option="abort")) == ["ApprovalGranted", "WorkflowFailed"]


def test_while_paused_facts_are_recorded_but_nothing_is_scheduled_until_resumed() -> None:
    """The operator-wide pause records a result but schedules no step; resuming schedules it."""
    run = Run()
    run.start(goal="explain event sourcing")
    task = run.last_task()
    run.now += timedelta(seconds=1)
    result = SearchResult(
        workflow_id=WF, task_id=task.task_id, attempt=1, provenance=COSTLY, passages=_passages(2)
    )
    events = decide(run.state, ResultReceived(result, run.now), paused=True)
    run.history.extend(events)
    assert _types(events) == ["PassagesRetrieved"]
    resumed = run.feed(ResumeRequested(run.now))
    assert _types(resumed) == ["TaskScheduled"]
    assert isinstance(resumed[0], TaskScheduled)
    assert resumed[0].agent == "writer"


def test_a_goal_may_ask_for_a_budget_up_to_the_operators_maximum() -> None:
    """A goal's own budget is frozen in its policy; asking above the ceiling is refused."""
    run = Run(WorkflowPolicy(budget=Budget(max_steps=50)))
    run.start(goal="explain event sourcing", max_steps=5, max_usd=0.5)
    assert run.state.policy.budget == Budget(max_steps=5, max_usd=0.5)
    greedy = GoalSubmitted(workflow_id="wf-2", goal="explain replay", max_steps=500)
    refusal = admit(
        Run().state,
        GoalReceived(greedy, WorkflowPolicy(), run.now, None, Budget(max_steps=100)),
        principal_agent=None,
    )
    assert refusal is not None
    assert "max_steps" in refusal.detail
