"""The topic table: names, keys, message types, producers and consumers."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TOPICS", "Topic", "dlq_topic", "task_topic"]


@dataclass(frozen=True)
class Topic:
    """One row of the topic table (README renders the same data)."""

    name: str
    key: str
    message_types: tuple[str, ...]
    producers: tuple[str, ...]
    consumers: tuple[str, ...]


GOALS = "agentlog.goals"
RESULTS = "agentlog.results"
CONTROL = "agentlog.control"
APPROVALS = "agentlog.approvals"
COMPLETIONS = "agentlog.completions"
WORKFLOW_EVENTS = "agentlog.workflow-events"


def task_topic(agent: str) -> str:
    """The topic a worker agent consumes its tasks from."""
    return f"agentlog.tasks.{agent}"


def dlq_topic(topic: str) -> str:
    """Where undecodable or invalid records from ``topic`` are parked."""
    return f"{topic}.dlq"


TOPICS: tuple[Topic, ...] = (
    Topic(
        GOALS,
        "workflow id",
        ("agentlog.goal.submitted.v1",),
        ("upstream", "agentlog submit"),
        ("supervisor",),
    ),
    Topic(
        task_topic("search"),
        "workflow id",
        ("agentlog.task.search.v1",),
        ("supervisor",),
        ("search",),
    ),
    Topic(
        task_topic("writer"),
        "workflow id",
        ("agentlog.task.write.v1",),
        ("supervisor",),
        ("writer",),
    ),
    Topic(
        task_topic("critic"),
        "workflow id",
        ("agentlog.task.critique.v1",),
        ("supervisor",),
        ("critic",),
    ),
    Topic(
        task_topic("summarizer"),
        "workflow id",
        ("agentlog.task.summarize.v1",),
        ("supervisor",),
        ("summarizer",),
    ),
    Topic(
        RESULTS,
        "workflow id",
        (
            "agentlog.result.search.v1",
            "agentlog.result.draft.v1",
            "agentlog.result.critique.v1",
            "agentlog.result.manifest.v1",
            "agentlog.result.failure.v1",
        ),
        ("search", "writer", "critic", "summarizer"),
        ("supervisor",),
    ),
    Topic(
        CONTROL,
        "workflow id",
        (
            "agentlog.control.cancel.v1",
            "agentlog.control.rollback.v1",
            "agentlog.control.fork.v1",
            "agentlog.control.pause.v1",
        ),
        ("agentlog CLI", "operators"),
        ("supervisor",),
    ),
    Topic(
        APPROVALS,
        "workflow id",
        ("agentlog.approval.decision.v1",),
        ("agentlog approve|deny|budget", "approvers"),
        ("supervisor",),
    ),
    Topic(
        COMPLETIONS,
        "workflow id",
        # v1 is no longer published; older records on the topic still carry it.
        ("agentlog.workflow.completed.v2", "agentlog.workflow.completed.v1"),
        ("supervisor",),
        ("downstream",),
    ),
    Topic(
        WORKFLOW_EVENTS,
        "workflow id",
        ("agentlog.workflow.event.v1",),
        ("supervisor",),
        ("auditors", "downstream"),
    ),
)
