"""A workflow's state, folded from its recorded events, rollbacks and forks included.

The fold takes events with their stream versions. ``WorkflowRolledBack(to_version)`` makes the
effective history "the events that were effective up to ``to_version``, then the rollback and
what follows"; the events in between stay in the log as an abandoned branch (their versions are
in ``abandoned_versions``, their tasks in ``abandoned_tasks``). ``WorkflowForked`` folds the
parent's copied history first, so a fork's state needs nothing from its parent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Literal, NamedTuple, TypeVar

from schemas.controls import AGENT_STEPS, BudgetGrant, Ledger
from schemas.events import (
    ApprovalRequested,
    CritiqueIssued,
    DomainEvent,
    DraftWritten,
    EscalatedToHuman,
    MemoryCompacted,
    PassagesRetrieved,
    TaskFailed,
    TaskScheduled,
    TaskTimedOut,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowForked,
    WorkflowPolicy,
    WorkflowRolledBack,
    WorkflowStarted,
    upcast,
)
from schemas.messages import AgentName, MemoryItem, Passage
from shared.domain.control_state import fold_control
from shared.domain.cycles import CYCLE_LENGTH, WATCHED_AGENTS, Step
from shared.domain.statuses import TERMINAL_EVENTS, WorkflowStatus, status_after

MemoryKind = Literal["goal", "passage", "draft", "critique", "manifest"]

_NO_POLICY = WorkflowPolicy()
_NO_GRANT = BudgetGrant()

__all__ = [
    "TERMINAL_EVENTS",
    "TaskState",
    "WorkflowState",
    "WorkflowStatus",
    "replay",
    "replay_versioned",
    "spends",
    "status_after",
]


@dataclass
class Spend:
    """What a workflow has spent: plain counters the fold bumps (a model per bump would cost
    more than the fold itself); ``ledger()`` gives the recorded form."""

    steps: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    usd: float = 0.0

    @property
    def tokens(self) -> int:
        """Input and output tokens together."""
        return self.tokens_in + self.tokens_out

    def ledger(self, seconds: float = 0.0) -> Ledger:
        """As a ``Ledger`` (what events and status show)."""
        return Ledger(
            steps=self.steps,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            usd=self.usd,
            seconds=seconds,
        )


class Memory(NamedTuple):
    """One working-memory entry; a ``MemoryItem`` only when a task is built from it."""

    kind: MemoryKind
    ref: str
    text: str

    def item(self) -> MemoryItem:
        """The message form the summarizer receives."""
        return MemoryItem(kind=self.kind, ref=self.ref, text=self.text)


@dataclass
class TaskState:
    """The latest attempt of one task."""

    task_id: str
    agent: AgentName
    attempt: int
    deadline: datetime
    command_type: str
    command: dict[str, object]
    open: bool = True


@dataclass
class WorkflowState:
    """Everything the supervisor needs to decide the next step."""

    workflow_id: str
    #: The stream's version: every event counts, abandoned ones too (the append's expectation).
    version: int = 0
    status: WorkflowStatus = WorkflowStatus.NEW
    goal: str = ""
    constraints: list[str] = field(default_factory=list)
    # Shared defaults: messages are frozen, and a fold replaces them rather than mutate them.
    policy: WorkflowPolicy = _NO_POLICY
    passages: list[Passage] = field(default_factory=list)
    drafts: list[DraftWritten] = field(default_factory=list)
    critiques: list[CritiqueIssued] = field(default_factory=list)
    manifest: MemoryCompacted | None = None
    tasks: dict[str, TaskState] = field(default_factory=dict)
    # Working memory gathered since the last compaction (what the summarizer would compress).
    fresh_memory: list[Memory] = field(default_factory=list)
    outcome_reason: str | None = None
    #: The effective history, with stream versions (a fork's copied history under version 0).
    effective: list[tuple[int, DomainEvent]] = field(default_factory=list)
    abandoned_versions: set[int] = field(default_factory=set)
    #: Tasks scheduled on an abandoned branch: a late result for one is stale, not unknown.
    abandoned_tasks: set[str] = field(default_factory=set)
    #: 1 for the first run; a rollback of a finished workflow starts the next.
    run: int = 1
    #: Versions of the terminal events of earlier runs, oldest first.
    finished_versions: list[int] = field(default_factory=list)
    forked_from: str | None = None
    forked_at_version: int | None = None
    # --- agent controls -------------------------------------------------------------
    #: When the budget's clock started (the goal, or the fork).
    started_at: datetime | None = None
    spent: Spend = field(default_factory=Spend)
    granted: BudgetGrant = _NO_GRANT
    #: The request the workflow waits on in PENDING_APPROVAL.
    pending: ApprovalRequested | None = None
    #: Step kinds a human approved, each good for the next step of that kind.
    approved_steps: set[str] = field(default_factory=set)
    #: Per agent, its recent steps (the command it was given, what it answered), newest last;
    #: fingerprinted only when a cycle is checked, so folding a long history stays cheap.
    recent_steps: dict[str, list[Step]] = field(default_factory=dict)
    cycles: dict[str, int] = field(default_factory=dict)
    strategies: dict[str, int] = field(default_factory=dict)
    #: Memory refs (``draft-3``, ``critique-3``) a backtrack dropped from what agents see.
    hidden_refs: set[str] = field(default_factory=set)
    escalation: EscalatedToHuman | None = None
    # --- fold internals ------------------------------------------------------------
    #: The state the last rollback rebuilt, keyed by the versions it was folded from. Operators
    #: roll back to one good point again and again; the next rollback to the same prefix copies
    #: it instead of folding the prefix again. Never mutated (only cloned), so clones share it.
    _rebuilt: tuple[tuple[int, ...], WorkflowState] | None = field(
        default=None, compare=False, repr=False
    )

    @property
    def open_tasks(self) -> list[TaskState]:
        """Tasks awaiting a result, in scheduling order."""
        return [t for t in self.tasks.values() if t.open]

    @property
    def memory_chars(self) -> int:
        """Size of the working memory the writer would be handed."""
        manifest = len(self.manifest.manifest) if self.manifest else 0
        return manifest + sum(len(item.text) for item in self.fresh_memory)

    @property
    def revision(self) -> int:
        """The latest draft's revision number (-1 before the first draft)."""
        return self.drafts[-1].revision if self.drafts else -1

    @property
    def effective_versions(self) -> list[int]:
        """Stream versions of the effective history, in order."""
        return [version for version, _ in self.effective if version > 0]

    @property
    def last_fact(self) -> DomainEvent | None:
        """The newest effective event that is a fact (an outcome of work, a goal, an ending),
        not a decision, a marker or a control event."""
        for _, event in reversed(self.effective):
            if isinstance(event, _FACTS):
                return event
        return None

    def clone(self) -> WorkflowState:
        """An independent copy for a decision to fold into.

        Events and their parts are frozen pydantic models, so they are shared; only the
        containers and the mutable task records are copied (a deep copy cost milliseconds per
        message on a long workflow; ``copy.copy`` and ``dataclasses.replace`` cost more than
        the copying itself).
        """
        fields = dict(self.__dict__)
        for name, value in fields.items():
            kind = type(value)
            if kind is list or kind is set or kind is dict:
                fields[name] = kind(value)
        fields["tasks"] = {task_id: _copied(task) for task_id, task in self.tasks.items()}
        fields["spent"] = _copied(self.spent)
        twin = object.__new__(type(self))
        twin.__dict__ = fields
        twin.recent_steps = {agent: list(steps) for agent, steps in self.recent_steps.items()}
        return twin

    def apply(self, event: DomainEvent, version: int | None = None) -> None:
        """Fold one event recorded at ``version`` (default: the next one) into the state."""
        self.version = version if version is not None else self.version + 1
        match event:
            case WorkflowRolledBack():
                self._roll_back(event)
            case WorkflowForked():
                self._fork(event)
            case _:
                self._fold(event)
        self.effective.append((self.version, event))

    def _fold(self, event: DomainEvent) -> None:
        match event:
            case WorkflowStarted():
                self.started_at = event.started_at
                self.status = WorkflowStatus.RUNNING
                self.goal = event.goal
                self.constraints = list(event.constraints)
                self.policy = event.policy
                self.fresh_memory.append(Memory("goal", "goal", event.goal))
            case TaskScheduled():
                self.spent.steps += 1
                self.approved_steps.discard(AGENT_STEPS[event.agent])
                self.tasks[event.task_id] = TaskState(
                    event.task_id,
                    event.agent,
                    event.attempt,
                    event.deadline,
                    event.command_type,
                    dict(event.command),
                )
            case PassagesRetrieved():
                self._close(event.task_id)
                self.passages = list(event.passages)
                self.fresh_memory.extend(
                    [Memory("passage", p.source_id, p.text) for p in event.passages]
                )
            case DraftWritten():
                self._remember_step(event.task_id, {"draft": event.draft})
                self._close(event.task_id)
                self.drafts.append(event)
                ref = f"draft-{event.revision}"
                self.fresh_memory.append(Memory("draft", ref, event.draft))
            case CritiqueIssued():
                self._close(event.task_id)
                self.critiques.append(event)
                text = "\n".join(event.feedback) or event.verdict
                ref = f"critique-{event.revision}"
                self.fresh_memory.append(Memory("critique", ref, text))
            case MemoryCompacted():
                self._remember_step(event.task_id, {"manifest": event.manifest})
                self._close(event.task_id)
                self.manifest = event
                self.fresh_memory = []
            case TaskFailed() | TaskTimedOut():
                self._close(event.task_id)
            case WorkflowCompleted():
                self.approved_steps.discard("deliver")
                self.status = WorkflowStatus.COMPLETED
            case WorkflowFailed():
                self.status = WorkflowStatus.FAILED
                self.outcome_reason = event.reason
            case WorkflowCancelled():
                self.status = WorkflowStatus.CANCELLED
                self.outcome_reason = event.reason
            case _:
                fold_control(self, event)
        self._count_spend(event)

    def _remember_step(self, task_id: str, output: dict[str, object]) -> None:
        task = self.tasks.get(task_id)
        if task is None or task.agent not in WATCHED_AGENTS:
            return
        pair = Step(task.command, output)
        self.recent_steps[task.agent] = [*self.recent_steps.get(task.agent, []), pair][
            -CYCLE_LENGTH:
        ]

    def _count_spend(self, event: DomainEvent) -> None:
        if not spends(type(event)):
            return
        provenance = event.provenance  # type: ignore[attr-defined]  # spends() checked it
        if provenance is None:
            return
        self.spent.tokens_in += provenance.prompt_tokens
        self.spent.tokens_out += provenance.completion_tokens
        self.spent.usd += provenance.cost_usd

    def _roll_back(self, event: WorkflowRolledBack) -> None:
        # Version 0 holds a fork's copied history: its WorkflowForked event re-creates it.
        kept = [(v, e) for v, e in self.effective if 0 < v <= event.to_version]
        dropped = [(v, e) for v, e in self.effective if v > event.to_version]
        finished = self.status.terminal
        # Rebuild from the kept prefix: it cannot drift from the forward fold because it is the
        # forward fold (of the same events: a version's event never changes).
        key = tuple(v for v, _ in kept)
        rebuilt = self._rebuilt
        if rebuilt is not None and rebuilt[0] == key:
            fresh = rebuilt[1].clone()
        else:
            fresh = replay_versioned(self.workflow_id, kept)
            rebuilt = (key, fresh.clone())
        # Grown in place, not copied: ``self`` becomes ``fresh`` below, and a copy per rollback
        # made a rollback-heavy fold quadratic.
        fresh.abandoned_versions = self.abandoned_versions
        fresh.abandoned_versions.update(v for v, _ in dropped)
        fresh.abandoned_tasks = self.abandoned_tasks
        fresh.abandoned_tasks.update(e.task_id for _, e in dropped if isinstance(e, TaskScheduled))
        # Tasks still open at the target are abandoned too: the next step is scheduled afresh.
        for task in fresh.open_tasks:
            fresh.abandoned_tasks.add(task.task_id)
            task.open = False
        fresh.run = self.run + 1 if finished else self.run
        fresh.finished_versions = list(self.finished_versions)
        if finished:
            fresh.finished_versions.append(self._terminal_version())
        fresh.forked_from, fresh.forked_at_version = self.forked_from, self.forked_at_version
        fresh.status = WorkflowStatus.RUNNING
        fresh.outcome_reason = None
        fresh.version = self.version
        self.__dict__.update(fresh.__dict__)
        self._rebuilt = rebuilt

    def _terminal_version(self) -> int:
        for version, event in reversed(self.effective):
            if event.event_type() in TERMINAL_EVENTS:
                return version
        return self.version

    def _fork(self, event: WorkflowForked) -> None:
        for copied in event.history:
            parent_event = upcast(copied.type, copied.schema_version, copied.data)
            if isinstance(parent_event, WorkflowForked):
                # A fork of a fork: its copied history precedes it in the copy; keep only its
                # overrides.
                self._override(parent_event)
            else:
                self._fold(parent_event)
            # The parent's events count under version 0: they are not this stream's events.
            self.effective.append((0, parent_event))
        for task in self.open_tasks:
            # The parent's tasks belong to the parent; the fork schedules its own.
            task.open = False
        self._override(event)
        self.status = WorkflowStatus.RUNNING
        self.outcome_reason = None
        # The fork's budget is its own: its clock and ledger start at the fork.
        self.started_at = event.forked_at
        self.spent = Spend()
        self.granted = BudgetGrant()
        self.pending = None
        self.forked_from = event.parent_workflow_id
        self.forked_at_version = event.parent_version

    def _override(self, event: WorkflowForked) -> None:
        if event.constraints is not None:
            self.constraints = list(event.constraints)
        if event.max_revisions is not None:
            self.policy = self.policy.model_copy(update={"max_revisions": event.max_revisions})
        if event.prompts:
            prompts = {**self.policy.prompts, **event.prompts}
            self.policy = self.policy.model_copy(update={"prompts": prompts})

    def _close(self, task_id: str) -> None:
        task = self.tasks.get(task_id)
        if task is not None:
            task.open = False


_FACTS = (
    WorkflowStarted,
    PassagesRetrieved,
    DraftWritten,
    CritiqueIssued,
    MemoryCompacted,
    TaskFailed,
    TaskTimedOut,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowCancelled,
)


_T = TypeVar("_T")


def _copied(obj: _T) -> _T:
    """A shallow copy of a plain object (one with a ``__dict__``), without ``copy.copy``'s
    reduce protocol."""
    twin: _T = object.__new__(type(obj))
    twin.__dict__.update(obj.__dict__)
    return twin


@cache
def spends(event_class: type[DomainEvent]) -> bool:
    """Whether events of this class carry a ``provenance`` (what a step spent).

    Asked once per class: ``getattr(event, "provenance", None)`` on an event without the field
    goes through pydantic's ``__getattr__`` and an AttributeError, about 15 µs a call.
    """
    return "provenance" in event_class.model_fields


def replay_versioned(workflow_id: str, events: Iterable[tuple[int, DomainEvent]]) -> WorkflowState:
    """Rebuild a workflow's state from events with their stream versions."""
    state = WorkflowState(workflow_id)
    for version, event in events:
        state.apply(event, version)
    return state


def replay(workflow_id: str, events: Iterable[DomainEvent]) -> WorkflowState:
    """Rebuild a workflow's state from its whole history (versions 1, 2, …)."""
    return replay_versioned(workflow_id, enumerate(events, start=1))
