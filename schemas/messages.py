"""Messages that cross Kafka topics: goals in, task commands, task results, completions out."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import uuid4

from pydantic import AwareDatetime, Field

from schemas.base import DoorText, GoalText, Identifier, LongText, Message, ShortText, Text
from schemas.controls import StepKind

__all__ = [
    "AgentName",
    "ApprovalDecision",
    "CancelWorkflow",
    "Citation",
    "CompletionEvent",
    "CompletionEventV1",
    "CritiqueResult",
    "CritiqueTask",
    "DraftResult",
    "ForkWorkflow",
    "GoalSubmitted",
    "ManifestResult",
    "MemoryItem",
    "Passage",
    "PauseScheduling",
    "Provenance",
    "RollbackWorkflow",
    "SearchResult",
    "SearchTask",
    "SummarizeTask",
    "TaskCommand",
    "TaskFailure",
    "TaskResult",
    "WriteTask",
]

AgentName = Literal["search", "writer", "critic", "summarizer"]


def _new_workflow_id() -> str:
    return f"wf-{uuid4().hex}"


class GoalSubmitted(Message):
    """What an upstream system publishes to ``agentlog.goals`` to start a workflow."""

    TYPE = "agentlog.goal.submitted.v1"

    workflow_id: Identifier = Field(default_factory=_new_workflow_id)
    goal: GoalText
    constraints: list[DoorText] = Field(default_factory=list, max_length=20)
    #: On whose behalf the upstream system asks (its claim, shown as such). Who submitted the
    #: goal is recorded from the verified signature, never from this field.
    requested_by: DoorText | None = None
    max_revisions: int | None = Field(default=None, ge=0, le=10)
    submitted_at: AwareDatetime | None = None
    # A goal may ask for a smaller (or larger, up to the operator's maximum) budget.
    max_steps: int | None = Field(default=None, ge=1, le=10_000)
    max_tokens: int | None = Field(default=None, ge=1)
    max_usd: float | None = Field(default=None, gt=0)
    max_seconds: float | None = Field(default=None, gt=0)
    #: Step kinds that must wait for a human's approval (``deliver`` gates the completion).
    approval_required: list[StepKind] = Field(default_factory=list, max_length=5)
    #: Prompt versions to pin instead of the operator's current ones (agent → version).
    prompts: dict[DoorText, DoorText] | None = Field(default=None, max_length=4)


class Provenance(Message):
    """Which provider, model and strategy produced a result, and what it cost."""

    provider: ShortText
    model: ShortText
    strategy_version: ShortText
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    tokens_estimated: bool = True
    #: From the operator's price table (USD per million tokens); 0 offline.
    cost_usd: float = Field(default=0.0, ge=0)
    prompt_id: ShortText | None = None
    prompt_version: ShortText | None = None
    prompt_hash: ShortText | None = None
    #: The model request's SHA-256 and the provider's raw completion, so replay, rollback and
    #: fork never call the model again for a recorded step.
    request_hash: ShortText | None = None
    raw_completion: LongText | None = None


class Passage(Message):
    """One ranked passage from the research corpus."""

    source_id: ShortText
    title: ShortText = ""
    text: Text
    score: float = 0.0
    #: The search engine's headline: matched terms in context (``**term**``).
    snippet: ShortText = ""


class Citation(Message):
    """A source the final report cites."""

    source_id: ShortText
    title: ShortText = ""


class MemoryItem(Message):
    """One entry of a workflow's working memory, as handed to the summarizer."""

    kind: Literal["goal", "passage", "draft", "critique", "manifest"]
    ref: ShortText
    text: LongText


class TaskCommand(Message):
    """Common fields of every task the supervisor assigns to a worker."""

    workflow_id: Identifier
    task_id: Identifier
    attempt: int = Field(ge=1, le=100)
    deadline: AwareDatetime
    agent: AgentName
    #: Which model the worker uses: its primary, or the fallback a failing task moved to.
    profile: ShortText = "primary"
    #: The prompt version the workflow pinned for this agent (None: the worker's current).
    prompt_version: ShortText | None = None


class SearchTask(TaskCommand):
    """Find passages relevant to a query."""

    TYPE = "agentlog.task.search.v1"

    agent: AgentName = "search"
    query: Text
    limit: int = Field(default=8, ge=1, le=50)


class WriteTask(TaskCommand):
    """Write (or revise) the report from passages, feedback and the project manifest."""

    TYPE = "agentlog.task.write.v1"

    agent: AgentName = "writer"
    goal: GoalText
    constraints: list[ShortText] = Field(default_factory=list, max_length=20)
    passages: list[Passage] = Field(default_factory=list, max_length=100)
    feedback: list[ShortText] = Field(default_factory=list, max_length=50)
    previous_draft: LongText | None = None
    manifest: LongText | None = None
    revision: int = Field(default=0, ge=0)
    #: The writing strategy to use; a backtrack after a detected cycle moves to the next.
    strategy: int = Field(default=0, ge=0)


class CritiqueTask(TaskCommand):
    """Judge a draft against the goal, its constraints and the known sources."""

    TYPE = "agentlog.task.critique.v1"

    agent: AgentName = "critic"
    goal: GoalText
    constraints: list[ShortText] = Field(default_factory=list, max_length=20)
    draft: LongText
    source_ids: list[ShortText] = Field(default_factory=list, max_length=200)
    revision: int = Field(default=0, ge=0)


class SummarizeTask(TaskCommand):
    """Compress working memory into the next version of the project manifest."""

    TYPE = "agentlog.task.summarize.v1"

    agent: AgentName = "summarizer"
    goal: GoalText
    items: list[MemoryItem] = Field(max_length=500)
    budget_chars: int = Field(ge=200, le=100_000)
    manifest_version: int = Field(ge=1)


class TaskResult(Message):
    """Common fields of every worker reply."""

    workflow_id: Identifier
    task_id: Identifier
    attempt: int = Field(ge=1, le=100)
    agent: AgentName
    provenance: Provenance


class SearchResult(TaskResult):
    """Ranked passages for a search task."""

    TYPE = "agentlog.result.search.v1"

    agent: AgentName = "search"
    passages: list[Passage] = Field(default_factory=list, max_length=100)


class DraftResult(TaskResult):
    """A Markdown draft with citations to source ids."""

    TYPE = "agentlog.result.draft.v1"

    agent: AgentName = "writer"
    draft: LongText
    cited_source_ids: list[ShortText] = Field(default_factory=list, max_length=200)
    revision: int = Field(default=0, ge=0)


class CritiqueResult(TaskResult):
    """The critic's verdict with the rubric's individual checks and actionable feedback."""

    TYPE = "agentlog.result.critique.v1"

    agent: AgentName = "critic"
    verdict: Literal["approved", "revise"]
    score: float = Field(ge=0.0, le=1.0)
    checks: dict[ShortText, bool] = Field(default_factory=dict)
    feedback: list[ShortText] = Field(default_factory=list, max_length=50)
    revision: int = Field(default=0, ge=0)


class ManifestResult(TaskResult):
    """A new version of the project manifest."""

    TYPE = "agentlog.result.manifest.v1"

    agent: AgentName = "summarizer"
    manifest: LongText
    manifest_version: int = Field(ge=1)
    source_chars: int = Field(ge=0)
    covered_refs: list[ShortText] = Field(default_factory=list, max_length=500)


class TaskFailure(TaskResult):
    """A worker could not complete a task."""

    TYPE = "agentlog.result.failure.v1"

    error: ShortText
    retryable: bool = True


class CancelWorkflow(Message):
    """A control message: stop a workflow now (the kill-switch)."""

    TYPE = "agentlog.control.cancel.v1"

    workflow_id: Identifier
    reason: DoorText = "cancelled by operator"
    #: Ignored: the supervisor records the verified signer as who cancelled. Kept so that
    #: producers written against the first schema stay valid.
    requested_by: DoorText | None = None


class RollbackWorkflow(Message):
    """A control message: make the workflow's effective history end at ``to_version`` again.

    The supervisor appends ``WorkflowRolledBack``; it works on running and finished workflows.
    """

    TYPE = "agentlog.control.rollback.v1"

    workflow_id: Identifier
    to_version: int = Field(ge=1)
    reason: DoorText


class ForkWorkflow(Message):
    """A control message: start ``workflow_id`` (new) from ``parent_workflow_id`` at a version.

    Keyed by the new workflow's id, like every message about that workflow.
    """

    TYPE = "agentlog.control.fork.v1"

    workflow_id: Identifier
    parent_workflow_id: Identifier
    at_version: int = Field(ge=1)
    #: Replaces the parent's constraints when given.
    constraints: list[DoorText] | None = Field(default=None, max_length=20)
    max_revisions: int | None = Field(default=None, ge=0, le=10)
    reason: DoorText = ""
    #: Prompt versions to run the fork with (agent → version), e.g. {"writer": "2.0.0"}.
    prompts: dict[DoorText, DoorText] | None = Field(default=None, max_length=4)


class ApprovalDecision(Message):
    """A human's answer to a workflow waiting in PENDING_APPROVAL, on ``agentlog.approvals``.

    Signed by an approver (or operator); the identity recorded is the verified signer's.
    """

    TYPE = "agentlog.approval.decision.v1"

    workflow_id: Identifier
    #: The request answered; None answers whatever the workflow waits for now.
    request_id: Identifier | None = None
    decision: Literal["grant", "deny"]
    #: For an escalation: ``retry``, ``skip`` or ``abort``.
    option: DoorText | None = None
    comment: DoorText = ""
    #: For a budget request: what to add.
    add_steps: int = Field(default=0, ge=0)
    add_tokens: int = Field(default=0, ge=0)
    add_usd: float = Field(default=0.0, ge=0)
    add_seconds: float = Field(default=0.0, ge=0)


class PauseScheduling(Message):
    """Operator-wide kill-switch: stop (or restart) scheduling for every workflow."""

    TYPE = "agentlog.control.pause.v1"

    paused: bool
    reason: DoorText = ""


class CompletionEventV1(Message):
    """The first completion schema: a cancelled workflow was reported as ``failed``.

    No longer published; kept so consumers reading old records still decode them.
    """

    TYPE = "agentlog.workflow.completed.v1"

    workflow_id: Identifier
    outcome: Literal["completed", "failed"]
    goal: GoalText
    report: LongText | None = None
    citations: list[Citation] = Field(default_factory=list, max_length=200)
    reason: ShortText | None = None
    revisions: int = Field(default=0, ge=0)
    manifest_version: int = Field(default=0, ge=0)
    last_version: int = Field(ge=1)
    finished_at: datetime


class CompletionEvent(Message):
    """What downstream systems consume from ``agentlog.completions``: a workflow's outcome.

    v2: a cancelled workflow has its own outcome, ``cancelled`` (v1 said ``failed``). A
    workflow that is rolled back after it finished runs again and finishes again: ``run`` counts
    its runs (1 for the first), and ``supersedes`` is the ``ce_id`` of the completion this one
    replaces, so a downstream consumer can tell a re-run from a new workflow.
    """

    TYPE = "agentlog.workflow.completed.v2"
    VERSION = 2

    workflow_id: Identifier
    outcome: Literal["completed", "failed", "cancelled"]
    goal: GoalText
    report: LongText | None = None
    citations: list[Citation] = Field(default_factory=list, max_length=200)
    reason: ShortText | None = None
    revisions: int = Field(default=0, ge=0)
    manifest_version: int = Field(default=0, ge=0)
    last_version: int = Field(ge=1)
    finished_at: datetime
    run: int = Field(default=1, ge=1)
    supersedes: ShortText | None = None
    #: Set for a fork's completions: the workflow it was forked from.
    forked_from: Identifier | None = None
