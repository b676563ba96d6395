"""A small research corpus and task factories shared by the agent and model tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from schemas.messages import CritiqueTask, MemoryItem, Passage, SummarizeTask, WriteTask

__all__ = [
    "GOAL",
    "PASSAGES",
    "SOURCE_IDS",
    "critique_task",
    "memory_items",
    "summarize_task",
    "write_task",
]

GOAL = "Explain how agentlog uses the event store and Kafka topics"

PASSAGES = (
    Passage(
        source_id="docs/design.md#1",
        title="Event store",
        text=(
            "agentlog keeps every workflow as an append-only stream of events in the event "
            "store. Each event records what happened, never what to do next. The state of a "
            "workflow is simply a fold over its events, so it can be rebuilt at any time. "
            "Streams are versioned, and a writer that read an old version gets a concurrency "
            "conflict instead of overwriting newer events."
        ),
        score=0.9,
    ),
    Passage(
        source_id="docs/design.md#2",
        title="Kafka topics",
        text=(
            "Services talk only through Kafka topics. Every task command goes to the topic of "
            "its agent, keyed by workflow id, so one workflow's messages stay in order on one "
            "partition. Consumers commit offsets only after their effect is durable in the "
            "event store, which gives at-least-once delivery."
        ),
        score=0.8,
    ),
    Passage(
        source_id="docs/design.md#3",
        title="Idempotent consumers",
        text=(
            "Duplicate deliveries are expected with at-least-once delivery. Each consumer "
            "records the message id in an inbox table in the same transaction as its effect. "
            "A redelivered message finds its id already recorded and is skipped."
        ),
        score=0.6,
    ),
    Passage(
        source_id="docs/ops.md#1",
        title="Retention",
        text=(
            "The embedded broker does not enforce topic retention. Operators should size "
            "disks for the full history of every topic. After a broker restart the topics are "
            "re-created and the supervisor resumes from the event store."
        ),
        score=0.5,
    ),
    Passage(
        source_id="docs/ops.md#2",
        title="Observability",
        text=(
            "Trace context travels in message headers, so one trace spans the supervisor and "
            "every agent. Metrics count tasks, retries and revisions per workflow. Logs are "
            "structured JSON lines with the workflow id on every line."
        ),
        score=0.4,
    ),
    Passage(
        source_id="docs/ops.md#3",
        title="Data protection",
        text=(
            "Personal data in goals is subject to GDPR requests from the people it concerns. "
            "An erasure request is honoured by crypto-shredding the key of the affected "
            "streams. Backups older than thirty days are deleted by a nightly job."
        ),
        score=0.3,
    ),
)

SOURCE_IDS = tuple(p.source_id for p in PASSAGES)


def _envelope(task_id: str) -> dict[str, object]:
    return {
        "workflow_id": "wf-test",
        "task_id": task_id,
        "attempt": 1,
        "deadline": datetime(2030, 1, 1, tzinfo=UTC) + timedelta(minutes=5),
    }


def write_task(
    *,
    goal: str = GOAL,
    constraints: Sequence[str] = (),
    passages: Sequence[Passage] = PASSAGES,
    feedback: Sequence[str] = (),
    previous_draft: str | None = None,
    revision: int = 0,
) -> WriteTask:
    """A write task over the sample corpus."""
    return WriteTask.model_validate(
        {
            **_envelope(f"write-{revision}"),
            "goal": goal,
            "constraints": list(constraints),
            "passages": list(passages),
            "feedback": list(feedback),
            "previous_draft": previous_draft,
            "revision": revision,
        }
    )


def critique_task(
    draft: str,
    *,
    goal: str = GOAL,
    constraints: Sequence[str] = (),
    source_ids: Sequence[str] = SOURCE_IDS,
    revision: int = 0,
) -> CritiqueTask:
    """A critique task for a draft over the sample corpus."""
    return CritiqueTask.model_validate(
        {
            **_envelope(f"critique-{revision}"),
            "goal": goal,
            "constraints": list(constraints),
            "draft": draft,
            "source_ids": list(source_ids),
            "revision": revision,
        }
    )


def memory_items(draft: str = "", critique: Sequence[str] = ()) -> list[MemoryItem]:
    """Working memory: the goal, the passages, and optionally a draft and a critique."""
    items = [MemoryItem(kind="goal", ref="goal", text=GOAL)]
    items += [MemoryItem(kind="passage", ref=p.source_id, text=p.text) for p in PASSAGES]
    if draft:
        items.append(MemoryItem(kind="draft", ref="draft-r0", text=draft))
    if critique:
        items.append(MemoryItem(kind="critique", ref="critique-r0", text="\n".join(critique)))
    return items


def summarize_task(
    items: Sequence[MemoryItem], *, budget_chars: int = 800, version: int = 1
) -> SummarizeTask:
    """A summarize task over the given memory items."""
    return SummarizeTask.model_validate(
        {
            **_envelope(f"summarize-{version}"),
            "goal": GOAL,
            "items": list(items),
            "budget_chars": budget_chars,
            "manifest_version": version,
        }
    )
