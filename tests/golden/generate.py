"""Write the golden histories: ``python -m tests.golden.generate``.

Each scenario drives the real supervisor handler over an in-memory store with a fixed clock, as
the services would, and writes the stream(s) it recorded as JSON Lines next to this file. Run
it only when a change to the decisions is intended: the replay test then shows the new files
agree with the new code, and the diff of the files shows what changed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from schemas.base import Message
from schemas.events import WorkflowPolicy
from schemas.messages import (
    ApprovalDecision,
    CancelWorkflow,
    CritiqueResult,
    DraftResult,
    ForkWorkflow,
    GoalSubmitted,
    ManifestResult,
    Passage,
    Provenance,
    RollbackWorkflow,
    SearchResult,
    TaskFailure,
)
from services.supervisor.handler import Supervisor
from shared.auth import Principal, Role
from shared.eventstore import InMemoryEventStore, RecordedEvent
from shared.transport import Delivery

__all__ = ["SCENARIOS", "record_all"]

HERE = Path(__file__).parent
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
PROVENANCE = Provenance(provider="offline", model="golden", strategy_version="1")
OPERATOR = Principal("operator", Role.OPERATOR)


class _Clock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at


class _Driver:
    """Feeds messages to a supervisor the way its consumer would."""

    def __init__(self, policy: WorkflowPolicy | None = None) -> None:
        self.store = InMemoryEventStore()
        self.clock = _Clock()
        self.supervisor = Supervisor(self.store, self.clock, policy or WorkflowPolicy())
        self._n = 0

    async def send(self, message: Message, principal: Principal | None = None) -> None:
        self.clock.at += timedelta(seconds=2)
        self._n += 1
        workflow_id = str(message.model_dump()["workflow_id"])
        await self.supervisor.handle(
            Delivery(
                message=message,
                topic="golden",
                partition=0,
                offset=self._n,
                key=workflow_id,
                ce_id=f"golden-{self._n}",
                ce_type=message.TYPE,
                ce_source="golden",
                ce_time=self.clock.at,
                ce_subject=workflow_id,
                principal=principal,
            )
        )

    async def wait(self, seconds: float) -> None:
        self.clock.at += timedelta(seconds=seconds)
        await self.supervisor.tick()

    async def task(self, workflow_id: str) -> dict[str, Any]:
        records = await self.store.read(workflow_id)
        return next(r.data for r in reversed(records) if r.type == "TaskScheduled")

    async def answer(self, workflow_id: str, cls: type[Message], **fields: Any) -> None:
        task = await self.task(workflow_id)
        agent = task["agent"]
        await self.send(
            cls.model_validate(
                {
                    "workflow_id": workflow_id,
                    "task_id": task["task_id"],
                    "attempt": task["attempt"],
                    "agent": agent,
                    "provenance": PROVENANCE,
                    **fields,
                }
            ),
            Principal(agent, Role.AGENT, agent),
        )


def _passages(n: int) -> list[Passage]:
    return [
        Passage(source_id=f"doc{i}.md#1", title=f"Doc {i}", text=f"Replay fact number {i}. " * 20)
        for i in range(n)
    ]


async def _search_write_approve(d: _Driver, wf: str, *, revise: bool = False) -> None:
    await d.answer(wf, SearchResult, passages=_passages(3))
    await d.answer(
        wf, DraftResult, draft="# R\n\nFirst [doc0.md#1].", cited_source_ids=["doc0.md#1"]
    )
    if revise:
        await d.answer(wf, CritiqueResult, verdict="revise", score=0.5, feedback=["avoid: simply"])
        await d.answer(
            wf,
            DraftResult,
            draft="# R\n\nSecond [doc1.md#1].",
            cited_source_ids=["doc1.md#1"],
            revision=1,
        )
    await d.answer(wf, CritiqueResult, verdict="approved", score=1.0, revision=1 if revise else 0)


async def revise_and_compact(d: _Driver) -> list[str]:
    """A revise loop with memory compaction: the summarizer runs whenever memory outgrows the
    policy's limit, before the writer."""
    wf = "wf-golden-revise"
    await d.send(GoalSubmitted(workflow_id=wf, goal="Explain replay", constraints=["avoid: x"]))
    await d.answer(wf, SearchResult, passages=_passages(6))
    drafts = iter(["# R\n\nSimply [doc0.md#1].", "# R\n\nClear [doc1.md#1]."])
    verdicts = iter([("revise", 0.5), ("approved", 1.0)])
    manifests = 0
    while (task := await d.task(wf))["agent"] != "none":
        records = await d.store.read(wf)
        if records[-1].type == "WorkflowCompleted":
            break
        if task["agent"] == "summarizer":
            manifests += 1
            await d.answer(
                wf,
                ManifestResult,
                manifest=f"manifest v{manifests}",
                manifest_version=manifests,
                source_chars=900,
                covered_refs=["doc0.md#1", "doc1.md#1"],
            )
        elif task["agent"] == "writer":
            draft = next(drafts)
            cited = ["doc0.md#1"] if "doc0" in draft else ["doc1.md#1"]
            revision = task["command"]["revision"]
            await d.answer(wf, DraftResult, draft=draft, cited_source_ids=cited, revision=revision)
        else:
            verdict, score = next(verdicts)
            await d.answer(wf, CritiqueResult, verdict=verdict, score=score, feedback=["be clear"])
    return [wf]


async def retries_and_timeouts(d: _Driver) -> list[str]:
    """A failed search is retried; a writer that misses its deadline is retried after a tick."""
    wf = "wf-golden-retry"
    await d.send(GoalSubmitted(workflow_id=wf, goal="Explain retries"))
    await d.answer(wf, TaskFailure, error="index busy", retryable=True)
    await d.answer(wf, SearchResult, passages=_passages(2))
    await d.wait(40)
    await d.answer(
        wf, DraftResult, draft="# R\n\nText [doc0.md#1].", cited_source_ids=["doc0.md#1"]
    )
    await d.answer(wf, CritiqueResult, verdict="approved", score=1.0)
    return [wf]


async def cancelled(d: _Driver) -> list[str]:
    """An operator cancels a running workflow."""
    wf = "wf-golden-cancel"
    await d.send(GoalSubmitted(workflow_id=wf, goal="Explain cancellation"))
    await d.answer(wf, SearchResult, passages=_passages(2))
    await d.send(CancelWorkflow(workflow_id=wf, reason="no longer needed"), OPERATOR)
    return [wf]


async def rolled_back(d: _Driver) -> list[str]:
    """A completed workflow is rolled back to after its search, runs again and completes; then
    a rollback while the critic works leaves a stale result that changes nothing."""
    wf = "wf-golden-rollback"
    await d.send(GoalSubmitted(workflow_id=wf, goal="Explain rollback"))
    await _search_write_approve(d, wf)
    await d.send(
        RollbackWorkflow(workflow_id=wf, to_version=3, reason="try another draft"), OPERATOR
    )
    await d.answer(
        wf, DraftResult, draft="# R\n\nAgain [doc2.md#1].", cited_source_ids=["doc2.md#1"]
    )
    stale = await d.task(wf)
    await d.send(RollbackWorkflow(workflow_id=wf, to_version=3, reason="once more"), OPERATOR)
    await d.send(
        CritiqueResult(
            workflow_id=wf,
            task_id=stale["task_id"],
            attempt=1,
            provenance=PROVENANCE,
            verdict="approved",
            score=1.0,
        ),
        Principal("critic", Role.AGENT, "critic"),
    )
    await d.answer(
        wf, DraftResult, draft="# R\n\nThird [doc1.md#1].", cited_source_ids=["doc1.md#1"]
    )
    await d.answer(wf, CritiqueResult, verdict="approved", score=1.0)
    return [wf]


async def forked(d: _Driver) -> list[str]:
    """A fork after the search with a changed constraint, and a fork of that fork."""
    parent, child, grandchild = "wf-golden-parent", "wf-golden-fork", "wf-golden-fork2"
    await d.send(GoalSubmitted(workflow_id=parent, goal="Explain forks"))
    await _search_write_approve(d, parent, revise=True)
    await d.send(
        ForkWorkflow(
            workflow_id=child,
            parent_workflow_id=parent,
            at_version=3,
            constraints=["max words: 80"],
            reason="shorter",
        ),
        OPERATOR,
    )
    await d.answer(
        child, DraftResult, draft="# R\n\nShort [doc0.md#1].", cited_source_ids=["doc0.md#1"]
    )
    await d.send(
        ForkWorkflow(
            workflow_id=grandchild, parent_workflow_id=child, at_version=3, max_revisions=0
        ),
        OPERATOR,
    )
    await d.answer(grandchild, CritiqueResult, verdict="revise", score=0.4, feedback=["longer"])
    await d.answer(child, CritiqueResult, verdict="approved", score=1.0)
    return [parent, child, grandchild]


async def controls(d: _Driver) -> list[str]:
    """Agent controls: a spent budget topped up, a gated delivery approved, a refused decision
    noted, and a writer stuck in a loop that backtracks and is escalated, then retried."""
    budget, loop = "wf-golden-budget", "wf-golden-loop"
    costly = PROVENANCE.model_copy(update={"prompt_tokens": 500, "completion_tokens": 500})
    await d.send(
        GoalSubmitted(
            workflow_id=budget,
            goal="Explain budgets",
            max_tokens=800,
            approval_required=["deliver"],
        )
    )
    await d.answer(budget, SearchResult, passages=_passages(2))
    task = await d.task(budget)
    await d.send(
        DraftResult(
            workflow_id=budget,
            task_id=task["task_id"],
            attempt=1,
            provenance=costly,
            draft="# R\n\nBudget [doc0.md#1].",
            cited_source_ids=["doc0.md#1"],
        ),
        Principal("writer", Role.AGENT, "writer"),
    )
    await d.supervisor.record_refusal(budget, "golden-forged", "decision refused: unauthenticated")
    await d.send(
        ApprovalDecision(workflow_id=budget, decision="grant", add_tokens=10_000), OPERATOR
    )
    await d.answer(budget, CritiqueResult, verdict="approved", score=1.0)
    await d.send(ApprovalDecision(workflow_id=budget, decision="grant", comment="ship"), OPERATOR)

    await d.send(GoalSubmitted(workflow_id=loop, goal="Explain loops", max_revisions=10))
    await d.answer(loop, SearchResult, passages=_passages(2))
    for _ in range(12):
        records = await d.store.read(loop)
        if records[-1].type == "ApprovalRequested":
            break
        task = await d.task(loop)
        if task["agent"] == "writer":
            await d.answer(
                loop,
                DraftResult,
                draft="# R\n\nSame [doc0.md#1].",
                cited_source_ids=["doc0.md#1"],
                revision=task["command"]["revision"],
            )
        else:
            await d.answer(loop, CritiqueResult, verdict="revise", score=0.3, feedback=["longer"])
    await d.send(ApprovalDecision(workflow_id=loop, decision="grant", option="retry"), OPERATOR)
    return [budget, loop]


SCENARIOS: dict[str, Callable[[_Driver], Awaitable[list[str]]]] = {
    "revise_and_compact": revise_and_compact,
    "retries_and_timeouts": retries_and_timeouts,
    "cancelled": cancelled,
    "rolled_back": rolled_back,
    "forked": forked,
    "controls": controls,
}


def _line(record: RecordedEvent) -> str:
    return json.dumps(
        {
            "stream_id": record.stream_id,
            "version": record.version,
            "type": record.type,
            "schema_version": record.schema_version,
            "data": record.data,
            "metadata": {k: v for k, v in record.metadata.items() if k != "trace_context"},
        },
        sort_keys=True,
    )


async def record_all(directory: Path = HERE) -> list[Path]:
    """Run every scenario and write ``<scenario>.jsonl`` files; returns their paths."""
    written = []
    for name, scenario in SCENARIOS.items():
        policy = WorkflowPolicy(memory_limit_chars=1500) if name == "revise_and_compact" else None
        driver = _Driver(policy)
        streams = await scenario(driver)
        path = directory / f"{name}.jsonl"
        lines = [_line(r) for wf in streams for r in await driver.store.read(wf)]
        path.write_text("\n".join(lines) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in asyncio.run(record_all()):
        print(path)
