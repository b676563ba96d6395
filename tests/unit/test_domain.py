"""The supervisor's pure decision logic: flow, retries, timeouts, compaction, determinism."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.events import (
    DomainEvent,
    TaskScheduled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowPolicy,
)
from schemas.messages import (
    CancelWorkflow,
    CritiqueResult,
    DraftResult,
    GoalSubmitted,
    ManifestResult,
    Passage,
    Provenance,
    SearchResult,
    TaskFailure,
    TaskResult,
)
from shared.domain import (
    CancelRequested,
    GoalReceived,
    ResultReceived,
    Tick,
    Trigger,
    WorkflowState,
    WorkflowStatus,
    completion_for,
    decide,
    replay,
)
from shared.domain.blobs import collect, expand

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PROV = Provenance(provider="test", model="t", strategy_version="1")
WF = "wf-1"


class Run:
    """Drives decide() like the supervisor does: fold every decision into the history."""

    def __init__(self, policy: WorkflowPolicy | None = None) -> None:
        self.history: list[DomainEvent] = []
        self.policy = policy or WorkflowPolicy()
        self.now = T0

    @property
    def state(self) -> WorkflowState:
        return replay(WF, self.history)

    def feed(self, trigger: Trigger) -> list[DomainEvent]:
        events = decide(self.state, trigger)
        self.history.extend(events)
        return events

    def start(self, **goal: Any) -> list[DomainEvent]:
        return self.feed(GoalReceived(GoalSubmitted(workflow_id=WF, **goal), self.policy, self.now))

    def last_task(self) -> TaskScheduled:
        return [e for e in self.history if isinstance(e, TaskScheduled)][-1]

    def sent(self, task: TaskScheduled) -> dict[str, Any]:
        """The command as the relay sends it: references expanded from the history."""
        values: dict[str, Any] = {}
        for event in self.history:
            collect(event.model_dump(mode="json"), values)
        command: dict[str, Any] = expand(task.command, values)
        return command

    def reply(self, result: TaskResult) -> list[DomainEvent]:
        self.now += timedelta(seconds=1)
        return self.feed(ResultReceived(result, self.now))


def _passages(n: int, size: int = 100) -> list[Passage]:
    return [Passage(source_id=f"doc#{i}", title=f"T{i}", text="x" * size) for i in range(n)]


def _result(task: TaskScheduled, cls: type[TaskResult], **fields: Any) -> TaskResult:
    return cls(
        workflow_id=WF, task_id=task.task_id, attempt=task.attempt, provenance=PROV, **fields
    )


def _types(events: list[DomainEvent]) -> list[str]:
    return [e.event_type() for e in events]


def test_goal_starts_workflow_and_schedules_search() -> None:
    """A goal records WorkflowStarted and schedules a search task with a deadline."""
    run = Run()
    events = run.start(goal="explain event sourcing")
    assert _types(events) == ["WorkflowStarted", "TaskScheduled"]
    task = run.last_task()
    assert task.agent == "search"
    assert task.attempt == 1
    assert task.deadline == T0 + timedelta(seconds=run.policy.task_timeout_s)
    assert task.command["query"] == "explain event sourcing"


def test_duplicate_goal_changes_nothing() -> None:
    """The same goal delivered twice starts the workflow once."""
    run = Run()
    run.start(goal="explain event sourcing")
    assert run.start(goal="explain event sourcing") == []


def test_happy_path_search_write_critique_complete() -> None:
    """Search → write → critique(approved) completes with the approved draft as the report."""
    run = Run()
    run.start(goal="explain event sourcing")
    run.reply(_result(run.last_task(), SearchResult, passages=_passages(2)))
    assert run.last_task().agent == "writer"
    run.reply(
        _result(run.last_task(), DraftResult, draft="report [doc#0]", cited_source_ids=["doc#0"])
    )
    assert run.last_task().agent == "critic"
    assert run.last_task().command["source_ids"] == ["doc#0", "doc#1"]
    events = run.reply(_result(run.last_task(), CritiqueResult, verdict="approved", score=1.0))
    assert _types(events) == ["CritiqueIssued", "WorkflowCompleted"]
    done = events[-1]
    assert isinstance(done, WorkflowCompleted)
    assert done.report == "report [doc#0]"
    assert [c.source_id for c in done.citations] == ["doc#0"]
    assert run.state.status is WorkflowStatus.COMPLETED
    completion = completion_for(run.state, done)
    assert completion is not None
    assert completion.outcome == "completed"
    assert completion.last_version == len(run.history)


def test_revise_loop_sends_feedback_and_previous_draft() -> None:
    """A 'revise' verdict schedules a new write carrying the feedback and the previous draft."""
    run = Run()
    run.start(goal="explain event sourcing")
    run.reply(_result(run.last_task(), SearchResult, passages=_passages(2)))
    run.reply(_result(run.last_task(), DraftResult, draft="d0"))
    run.reply(
        _result(
            run.last_task(), CritiqueResult, verdict="revise", score=0.5, feedback=["[banned] x"]
        )
    )
    task = run.last_task()
    assert task.agent == "writer"
    assert task.command["feedback"] == ["[banned] x"]
    assert task.command["previous_draft"] == "d0"
    assert task.command["revision"] == 1


def test_revisions_exhausted_fails_without_committing_a_draft() -> None:
    """When the critic never approves, the workflow fails after max_revisions with the reason."""
    run = Run(WorkflowPolicy(max_revisions=1))
    run.start(goal="explain event sourcing")
    run.reply(_result(run.last_task(), SearchResult, passages=_passages(1)))
    for revision in range(2):
        run.reply(_result(run.last_task(), DraftResult, draft=f"d{revision}", revision=revision))
        events = run.reply(
            _result(run.last_task(), CritiqueResult, verdict="revise", score=0.2, revision=revision)
        )
    assert isinstance(events[-1], WorkflowFailed)
    assert "did not approve" in events[-1].reason
    assert not any(isinstance(e, WorkflowCompleted) for e in run.history)


def test_large_memory_is_compacted_before_writing() -> None:
    """Memory past the limit schedules the summarizer; the writer then gets the manifest."""
    run = Run(WorkflowPolicy(memory_limit_chars=1000, manifest_budget_chars=500))
    run.start(goal="explain event sourcing")
    run.reply(_result(run.last_task(), SearchResult, passages=_passages(5, size=400)))
    task = run.last_task()
    assert task.agent == "summarizer"
    assert task.command["manifest_version"] == 1
    assert len(task.command["items"]) == 6  # the goal and five passages
    run.reply(
        _result(
            task,
            ManifestResult,
            manifest="# manifest",
            manifest_version=1,
            source_chars=2000,
            covered_refs=["doc#1", "doc#3"],
        )
    )
    write = run.last_task()
    assert write.agent == "writer"
    sent = run.sent(write)
    assert sent["manifest"] == "# manifest"
    assert [p["source_id"] for p in sent["passages"]] == ["doc#1", "doc#3"]
    assert run.state.memory_chars == len("# manifest")


def test_failure_is_retried_then_escalated_to_a_human() -> None:
    """A retryable failure reschedules the same task; after max_attempts (no fallback) the
    workflow escalates and waits for a human to retry or abort."""
    run = Run(WorkflowPolicy(max_attempts=2))
    run.start(goal="explain event sourcing")
    first = run.last_task()
    run.reply(_result(first, TaskFailure, agent="search", error="index down"))
    second = run.last_task()
    assert (second.task_id, second.attempt) == (first.task_id, 2)
    events = run.reply(_result(second, TaskFailure, agent="search", error="index down"))
    assert _types(events) == ["TaskFailed", "EscalatedToHuman", "ApprovalRequested"]
    assert "index down" in events[1].reason  # type: ignore[attr-defined]  # checked type above
    assert run.state.status is WorkflowStatus.PENDING_APPROVAL


def test_a_failure_that_is_not_retryable_fails_the_workflow_at_once() -> None:
    """A failure the agent marks not retryable (a rejected key) fails without retry or human."""
    run = Run()
    run.start(goal="explain event sourcing")
    events = run.reply(
        _result(run.last_task(), TaskFailure, agent="search", error="key rejected", retryable=False)
    )
    assert _types(events) == ["TaskFailed", "WorkflowFailed"]


def test_stale_attempt_result_is_ignored() -> None:
    """A late result for a superseded attempt records nothing."""
    run = Run()
    run.start(goal="explain event sourcing")
    first = run.last_task()
    run.reply(_result(first, TaskFailure, agent="search", error="boom"))
    assert run.reply(_result(first, SearchResult, passages=_passages(1))) == []


def test_deadline_expiry_times_out_and_retries() -> None:
    """A tick past a task's deadline records TaskTimedOut and reschedules the next attempt."""
    run = Run()
    run.start(goal="explain event sourcing")
    assert run.feed(Tick(T0 + timedelta(seconds=1))) == []
    events = run.feed(Tick(T0 + timedelta(seconds=run.policy.task_timeout_s + 1)))
    assert _types(events) == ["TaskTimedOut", "TaskScheduled"]
    assert run.last_task().attempt == 2


def test_cancel_stops_the_workflow_and_later_results_are_ignored() -> None:
    """The kill-switch ends the workflow; results arriving afterwards change nothing."""
    run = Run()
    run.start(goal="explain event sourcing")
    task = run.last_task()
    events = run.feed(CancelRequested(CancelWorkflow(workflow_id=WF, reason="stop"), T0))
    assert _types(events) == ["WorkflowCancelled"]
    assert run.reply(_result(task, SearchResult, passages=_passages(1))) == []
    assert run.state.status is WorkflowStatus.CANCELLED


def test_replaying_a_recorded_history_twice_gives_identical_decisions() -> None:
    """Decisions are a pure function of history and input: two replays agree event for event."""
    run = Run()
    run.start(goal="explain event sourcing")
    run.reply(_result(run.last_task(), SearchResult, passages=_passages(3)))
    run.reply(_result(run.last_task(), DraftResult, draft="d0"))
    triggers: list[Trigger] = [
        ResultReceived(
            _result(run.last_task(), CritiqueResult, verdict="revise", score=0.5, feedback=["f"]),
            T0 + timedelta(seconds=9),
        ),
        Tick(T0 + timedelta(hours=1)),
    ]
    recorded = list(run.history)

    def decisions() -> list[dict[str, object]]:
        history = list(recorded)
        out: list[dict[str, object]] = []
        for trigger in triggers:
            events = decide(replay(WF, history), trigger)
            history.extend(events)
            out.extend(e.model_dump(mode="json") | {"type": e.event_type()} for e in events)
        return out

    first, second = decisions(), decisions()
    assert first == second
    assert [d["type"] for d in first] == [
        "CritiqueIssued",
        "TaskScheduled",
        "TaskTimedOut",
        "TaskScheduled",
    ]


def test_status_after_the_last_event_matches_replay() -> None:
    """The status read off a stream head equals the one a full replay gives."""
    from shared.domain import status_after

    run = Run(WorkflowPolicy(max_attempts=1))
    run.start(goal="explain event sourcing")
    assert status_after(run.history[-1].event_type()) is run.state.status
    run.reply(_result(run.last_task(), TaskFailure, agent="search", error="down"))
    assert run.state.status is WorkflowStatus.PENDING_APPROVAL
    assert status_after(run.history[-1].event_type()) is run.state.status
    run.reply(_result(run.last_task(), TaskFailure, agent="search", error="x", retryable=False))
    assert status_after(run.history[-1].event_type()) is run.state.status


def test_the_domain_loads_no_io_library() -> None:
    """Importing shared.domain pulls in no Kafka, Postgres, HTTP, model SDK or telemetry code."""
    import subprocess
    import sys

    probe = (
        "import sys, shared.domain; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'aiokafka', 'asyncpg', 'openai', 'httpx', 'aiohttp', 'opentelemetry'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
