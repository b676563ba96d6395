"""The report workflow's steps, shared by the peers: agentlog's own agents, fed what the
supervisor feeds them.

The agents are the services' ``perform`` functions, built by the services' own factories
(``services.<name>.main.make_perform``): the search over the same Postgres index, the writer,
critic and summarizer on the configured (offline) model. The commands they get are built as
``shared.domain.scheduling`` builds them, and what comes back is folded as
``shared.domain.state`` folds it, so a peer hands each agent the same input agentlog would.

Which step comes next follows the domain's rules (``shared.domain.decide``): search; compact
working memory before a write when it is over the policy's limit; critique every draft; revise
until the critic approves or the revisions run out. The peers do only that happy path: no
budgets, approvals, cycle checks, retries, deadlines or signatures, which agentlog adds.

The state is plain JSON (lists and dicts of str/int), so each peer's checkpointer stores it as
it would any application state, and no peer pays for pydantic in its serializer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal, Self, TypedDict

from schemas.events import WorkflowPolicy
from schemas.messages import (
    CritiqueResult,
    CritiqueTask,
    DraftResult,
    ManifestResult,
    MemoryItem,
    Passage,
    SearchResult,
    SearchTask,
    SummarizeTask,
    TaskCommand,
    TaskFailure,
    TaskResult,
    WriteTask,
)
from services.critic.main import make_perform as make_critic
from services.search.main import make_perform as make_search
from services.summarizer.main import make_perform as make_summarizer
from services.supervisor.main import policy_from
from services.writer.main import make_perform as make_writer
from shared.agents.draft import cited_sources
from shared.runtime.worker import Perform
from shared.settings import Settings

__all__ = [
    "AgentStep",
    "AgentSteps",
    "ReportState",
    "StepName",
    "command_for",
    "finish",
    "fold",
    "new_report",
    "next_step",
]

AgentStep = Literal["search", "summarize", "write", "critique"]
StepName = AgentStep | Literal["complete", "fail"]

_AGENTS: dict[AgentStep, str] = {
    "search": "search",
    "summarize": "summarizer",
    "write": "writer",
    "critique": "critic",
}
_FACTORIES: dict[AgentStep, Callable[[Settings, contextlib.AsyncExitStack], Awaitable[Perform]]] = {
    "search": make_search,
    "summarize": make_summarizer,
    "write": make_writer,
    "critique": make_critic,
}


class ReportState(TypedDict):
    """One workflow's state, as a peer checkpoints it (JSON values only)."""

    workflow_id: str
    goal: str
    #: The last step that ran ("start" before any).
    last: str
    steps: int
    passages: list[dict[str, Any]]
    #: ``{"revision", "draft"}`` per draft, oldest first.
    drafts: list[dict[str, Any]]
    #: ``{"revision", "verdict", "feedback"}`` per critique, oldest first.
    critiques: list[dict[str, Any]]
    #: ``{"version", "text", "covered_refs"}`` of the latest manifest, or None.
    manifest: dict[str, Any] | None
    #: Working memory since the last compaction: ``{"kind", "ref", "text"}`` items.
    memory: list[dict[str, Any]]
    outcome: str | None
    report: str | None
    citations: list[str]
    reason: str | None


def new_report(workflow_id: str, goal: str) -> ReportState:
    """A workflow that has not started any step (its goal is its first memory item)."""
    return ReportState(
        workflow_id=workflow_id,
        goal=goal,
        last="start",
        steps=0,
        passages=[],
        drafts=[],
        critiques=[],
        manifest=None,
        memory=[{"kind": "goal", "ref": "goal", "text": goal}],
        outcome=None,
        report=None,
        citations=[],
        reason=None,
    )


def _memory_chars(state: ReportState) -> int:
    manifest = len(state["manifest"]["text"]) if state["manifest"] else 0
    return manifest + sum(len(item["text"]) for item in state["memory"])


def _write_or_compact(state: ReportState, policy: WorkflowPolicy) -> StepName:
    return "summarize" if _memory_chars(state) > policy.memory_limit_chars else "write"


def next_step(state: ReportState, policy: WorkflowPolicy) -> StepName:
    """The step after the last one, by the rules ``shared.domain.decide`` applies."""
    last = state["last"]
    if last == "start":
        return "search"
    if last == "search":
        return _write_or_compact(state, policy) if state["passages"] else "fail"
    if last == "summarize":
        return "write"
    if last == "write":
        return "critique"
    if last == "critique":
        if state["critiques"][-1]["verdict"] == "approved":
            return "complete"
        if state["drafts"][-1]["revision"] < policy.max_revisions:
            return _write_or_compact(state, policy)
        return "fail"
    raise ValueError(f"no step follows {last!r}")


def _writer_passages(state: ReportState) -> list[Passage]:
    passages = [Passage.model_validate(p) for p in state["passages"]]
    if state["manifest"] is None:
        return passages
    kept = set(state["manifest"]["covered_refs"])
    return [p for p in passages if p.source_id in kept] or passages


def command_for(
    step: AgentStep, state: ReportState, policy: WorkflowPolicy, now: datetime
) -> TaskCommand:
    """The command agentlog's supervisor would send for ``step`` (``shared.domain.scheduling``)."""
    common: dict[str, Any] = {
        "workflow_id": state["workflow_id"],
        "task_id": f"{_AGENTS[step]}-s{state['steps'] + 1}",
        "attempt": 1,
        "deadline": now + timedelta(seconds=policy.task_timeout_s),
        "prompt_version": policy.prompts.get(_AGENTS[step]),
    }
    goal = state["goal"]
    if step == "search":
        return SearchTask(**common, query=goal, limit=policy.search_limit)
    if step == "write":
        drafts, critiques, manifest = state["drafts"], state["critiques"], state["manifest"]
        return WriteTask(
            **common,
            goal=goal,
            passages=_writer_passages(state),
            feedback=list(critiques[-1]["feedback"]) if critiques else [],
            previous_draft=drafts[-1]["draft"] if drafts else None,
            manifest=manifest["text"] if manifest else None,
            revision=(drafts[-1]["revision"] + 1) if drafts else 0,
        )
    if step == "critique":
        draft = state["drafts"][-1]
        return CritiqueTask(
            **common,
            goal=goal,
            draft=draft["draft"],
            source_ids=sorted({p.source_id for p in _writer_passages(state)}),
            revision=draft["revision"],
        )
    manifest = state["manifest"]
    items = [MemoryItem.model_validate(item) for item in state["memory"]]
    if manifest is not None:
        ref = f"manifest-v{manifest['version']}"
        items.insert(0, MemoryItem(kind="manifest", ref=ref, text=manifest["text"]))
    return SummarizeTask(
        **common,
        goal=goal,
        items=items,
        budget_chars=policy.manifest_budget_chars,
        manifest_version=(manifest["version"] + 1) if manifest else 1,
    )


def fold(state: ReportState, step: AgentStep, result: dict[str, Any]) -> ReportState:
    """The state after ``step`` answered ``result`` (``shared.domain.state``'s fold)."""
    new = ReportState(**state)
    new["last"], new["steps"] = step, state["steps"] + 1
    if step == "search":
        new["passages"] = list(result["passages"])
        new["memory"] = state["memory"] + [
            {"kind": "passage", "ref": p["source_id"], "text": p["text"]}
            for p in result["passages"]
        ]
    elif step == "write":
        revision = result["revision"]
        new["drafts"] = [*state["drafts"], {"revision": revision, "draft": result["draft"]}]
        draft_memory = {"kind": "draft", "ref": f"draft-{revision}", "text": result["draft"]}
        new["memory"] = [*state["memory"], draft_memory]
    elif step == "critique":
        revision, feedback = result["revision"], list(result["feedback"])
        critique = {"revision": revision, "verdict": result["verdict"], "feedback": feedback}
        new["critiques"] = [*state["critiques"], critique]
        text = "\n".join(feedback) or result["verdict"]
        new["memory"] = [
            *state["memory"],
            {"kind": "critique", "ref": f"critique-{revision}", "text": text},
        ]
    else:
        new["manifest"] = {
            "version": result["manifest_version"],
            "text": result["manifest"],
            "covered_refs": list(result["covered_refs"]),
        }
        new["memory"] = []
    return new


def finish(state: ReportState, step: Literal["complete", "fail"]) -> ReportState:
    """The ending: the approved report with the sources it cites, or why there is none."""
    new = ReportState(**state)
    if step == "fail":
        new["outcome"] = "failed"
        new["reason"] = "search found no passages" if not state["passages"] else "revisions ran out"
        return new
    draft = state["drafts"][-1]["draft"]
    known = {p.source_id for p in _writer_passages(state)}
    new["outcome"], new["report"] = "completed", draft
    new["citations"] = [s for s in cited_sources(draft) if s in known]
    return new


class StepFailed(RuntimeError):
    """An agent answered with a failure (the peers do not retry; agentlog would)."""


class AgentSteps:
    """The four agents' ``perform`` functions, open for the peers to call.

    ``async with AgentSteps(settings)``: the search agent opens its index (and syncs it with
    the corpus folder) and the model agents their models, exactly as the services do.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.policy = policy_from(settings)
        self._resources = contextlib.AsyncExitStack()
        self._performs: dict[AgentStep, Perform] = {}

    async def __aenter__(self) -> Self:
        await self._resources.__aenter__()
        for step, factory in _FACTORIES.items():
            self._performs[step] = await factory(self.settings, self._resources)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._resources.__aexit__(exc_type, exc, tb)

    async def run(self, step: AgentStep, state: ReportState) -> dict[str, Any]:
        """Run ``step`` on ``state``: the agent's result as JSON (what a peer records)."""
        command = command_for(step, state, self.policy, datetime.now(UTC))
        result: TaskResult = await self._performs[step](command)
        if isinstance(result, TaskFailure):
            raise StepFailed(f"{step} failed: {result.error}")
        expected = {
            "search": SearchResult,
            "summarize": ManifestResult,
            "write": DraftResult,
            "critique": CritiqueResult,
        }[step]
        if not isinstance(result, expected):
            raise TypeError(f"{step} answered {type(result).__name__}")
        return result.model_dump(mode="json")
