"""The read side's queries over the in-memory store: timelines with abandoned branches and runs,
the state at a version, and where two runs diverge. Histories are the committed golden ones
(tests/golden), recorded by the real decision code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.messages import CritiqueResult, DraftResult, Provenance, SearchResult
from shared.eventstore import InMemoryEventStore, NewEvent, RecordedEvent
from shared.readside import queries
from shared.runtime.codec import encode_events
from tests.unit.test_domain import Run, _passages, _result

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
ROLLBACK = "wf-golden-rollback"  # completed, rolled back to v3 (run 2), rolled back again, done
PARENT, FORK = "wf-golden-parent", "wf-golden-fork"  # FORK: at v3, constraint "max words: 80"
TOKENS = Provenance(
    provider="test", model="t", strategy_version="1", prompt_tokens=100, completion_tokens=20
)


async def _golden(*names: str) -> InMemoryEventStore:
    """A store holding the golden histories."""
    store = InMemoryEventStore()
    await store.start()
    await load_golden(store, *names)
    return store


async def load_golden(store: InMemoryEventStore, *names: str) -> None:
    """Append the golden histories ``names`` to ``store``, each event with its metadata."""
    for name in names:
        for raw in (GOLDEN / f"{name}.jsonl").read_text().splitlines():
            line = json.loads(raw)
            event = NewEvent(
                line["type"], line["data"], line["schema_version"], metadata=line["metadata"]
            )
            stream = line["stream_id"]
            await store.append(stream, [event], await store.stream_version(stream))


class _SpyStore(InMemoryEventStore):
    """Remembers the bounds of every read."""

    def __init__(self) -> None:
        super().__init__()
        self.bounds: list[int | None] = []

    async def read(
        self, stream_id: str, *, after_version: int = 0, up_to_version: int | None = None
    ) -> list[RecordedEvent]:
        self.bounds.append(up_to_version)
        return await super().read(
            stream_id, after_version=after_version, up_to_version=up_to_version
        )


async def _costly(store: InMemoryEventStore) -> None:
    """Record "wf-cost": search, draft and critique, each costing 100 + 20 tokens."""
    run = Run()
    run.start(goal="explain event sourcing")
    search = _result(run.last_task(), SearchResult, passages=_passages(2))
    run.reply(search.model_copy(update={"provenance": TOKENS}))
    draft = _result(run.last_task(), DraftResult, draft="a [doc#0]", cited_source_ids=["doc#0"])
    run.reply(draft.model_copy(update={"provenance": TOKENS}))
    critique = _result(run.last_task(), CritiqueResult, verdict="approved", score=1.0)
    run.reply(critique.model_copy(update={"provenance": TOKENS}))
    records = encode_events(run.history, actor="test", causation_id="c")
    await store.append("wf-cost", records, 0)


# --- timeline ------------------------------------------------------------------------------


async def test_timeline_marks_abandoned_branches_and_runs() -> None:
    """Events a rollback left behind are marked abandoned (the rollback markers of a branch too),
    and every event from the rollback of the finished run on belongs to run 2."""
    store = await _golden("rolled_back")
    rows = queries.timeline(await store.read(ROLLBACK))
    assert [r.version for r in rows] == list(range(1, 19))
    assert {r.version for r in rows if r.abandoned} == {4, 5, 6, 7, 8, 9, 10, 11, 12}
    assert [r.run for r in rows] == [1] * 8 + [2] * 10
    assert rows[12].summary == "rolled back to version 3: once more"


async def test_timeline_full_adds_payload_and_who_caused_it() -> None:
    """With full, each row carries its data, causation, correlation, principal, actor and the
    provenance of a result; without, none of those keys appear."""
    store = await _golden("rolled_back")
    records = await store.read(ROLLBACK)
    full = [r.as_dict() for r in queries.timeline(records, full=True)]
    plain = queries.timeline(records)[0].as_dict()
    assert set(plain) == {"position", "version", "type", "agent", "summary", "time"} | {
        "abandoned",
        "run",
    }
    assert full[2]["data"] == records[2].data
    assert full[2]["provenance"] == records[2].data["provenance"]
    assert full[0]["provenance"] is None
    assert full[8]["causation_id"] == records[8].metadata["causation_id"]
    assert full[8]["correlation_id"] == ROLLBACK
    assert full[8]["actor"] == "supervisor"
    assert "principal" in full[8]
    assert full[0]["event_id"] == records[0].event_id


async def test_the_correlation_id_is_the_workflow_s_whether_stored_or_not() -> None:
    """Events recorded now store no correlation id (it is the stream id), and the full timeline
    still reports it, as it does for an older event that stored one."""
    store = await _golden("rolled_back")
    records = await store.read(ROLLBACK)
    assert all("correlation_id" not in r.metadata for r in records)
    cancelled = {"reason": "stop", "finished_at": "2026-01-01T00:00:00+00:00"}
    older = NewEvent("WorkflowCancelled", cancelled, metadata={"correlation_id": "upstream-7"})
    await store.append(ROLLBACK, [older], len(records))
    full = [r.as_dict() for r in queries.timeline(await store.read(ROLLBACK), full=True)]
    assert [row["correlation_id"] for row in full] == [ROLLBACK] * len(records) + ["upstream-7"]


async def test_the_full_timeline_shows_each_command_as_sent() -> None:
    """A task whose command holds recorded values by reference gets ``sent``: the command with
    them expanded, as the whole command recorded before references existed; others get None."""
    store = await _golden("revise_and_compact")
    [stream] = {json.loads(raw)["stream_id"] for raw in _lines("revise_and_compact")}
    rows = queries.timeline(await store.read(stream), full=True)
    tasks = [r.detail for r in rows if r.detail is not None and r.type == "TaskScheduled"]
    whole = [
        line["data"]["command"]
        for line in map(json.loads, _lines("whole_commands/revise_and_compact"))
        if line["type"] == "TaskScheduled"
    ]
    assert tasks[0].sent is None  # the search task: nothing recorded yet to refer to
    assert sum(task.sent is not None for task in tasks) >= 2
    assert [task.sent or task.data["command"] for task in tasks] == whole
    assert all(
        r.detail is not None and r.detail.sent is None for r in rows if r.type != "TaskScheduled"
    )


def _lines(name: str) -> list[str]:
    return (GOLDEN / f"{name}.jsonl").read_text().splitlines()


# --- state at a version ------------------------------------------------------------------


async def test_state_at_a_version_is_the_state_then_read_from_that_prefix_only() -> None:
    """The state right after the critic's task was scheduled on the second branch: run 2, one
    open critic task, the first branch abandoned, and the store read only up to that version."""
    store = _SpyStore()
    golden = await _golden("rolled_back")
    for record in await golden.read(ROLLBACK):
        event = NewEvent(record.type, record.data, record.schema_version, metadata=record.metadata)
        await store.append(ROLLBACK, [event], record.version - 1)
    info = await queries.state_at(store, ROLLBACK, 12)
    assert store.bounds == [12]
    assert (info["status"], info["run"], info["version"]) == ("running", 2, 12)
    assert info["event"]["type"] == "TaskScheduled"
    assert info["abandoned_versions"] == [4, 5, 6, 7, 8]
    assert [t["agent"] for t in info["open_tasks"]] == ["critic"]
    assert [d["revision"] for d in info["drafts"]] == [0]
    assert len(info["passages"]) == 3
    assert info["critiques"] == []


async def test_state_after_the_search_has_passages_and_nothing_else() -> None:
    """At the PassagesRetrieved version the state has the passages, no draft, no open task."""
    store = await _golden("rolled_back")
    info = await queries.state_at(store, ROLLBACK, 3)
    assert (info["status"], info["run"]) == ("running", 1)
    assert len(info["passages"]) == 3
    assert info["drafts"] == []
    assert info["open_tasks"] == []
    assert info["abandoned_versions"] == []


async def test_state_at_sums_the_tokens_of_the_effective_events() -> None:
    """Tokens so far are the prompt and completion tokens of every result up to the version."""
    store = InMemoryEventStore()
    await _costly(store)
    after_draft = await queries.state_at(store, "wf-cost", 5)
    assert after_draft["event"]["type"] == "DraftWritten"
    assert after_draft["tokens"] == {"prompt": 200, "completion": 40, "total": 240}
    done = await queries.state_at(store, "wf-cost", await store.stream_version("wf-cost"))
    assert done["tokens"]["total"] == 360
    assert done["status"] == "completed"


@pytest.mark.parametrize(
    ("workflow_id", "version", "message"),
    [
        ("wf-nope", 1, "no workflow 'wf-nope'"),
        (ROLLBACK, 19, f"workflow {ROLLBACK} has 18 events; no version 19"),
        (ROLLBACK, 0, "no version 0: versions start at 1"),
    ],
)
async def test_state_at_an_unknown_workflow_or_version_says_which(
    workflow_id: str, version: int, message: str
) -> None:
    """An unknown workflow, a version past the head or below 1 is a NotFoundError saying so."""
    store = await _golden("rolled_back")
    with pytest.raises(queries.NotFoundError) as raised:
        await queries.state_at(store, workflow_id, version)
    assert str(raised.value) == message


# --- diff --------------------------------------------------------------------------------


async def test_a_fork_diverges_from_its_parent_at_its_first_own_step() -> None:
    """The fork shares the parent's three copied steps, then its writer task differs in the
    constraints; verdicts, reports and constraints are set side by side."""
    store = await _golden("forked")
    result = queries.diff(await store.read(PARENT), await store.read(FORK))
    assert result.diverged
    assert result.common == 3
    assert result.a is not None
    assert result.b is not None
    assert (result.a.step, result.a.version, result.a.type) == (4, 4, "TaskScheduled")
    assert (result.b.step, result.b.version, result.b.type) == (4, 2, "TaskScheduled")
    assert result.changed == ["command.constraints"]
    aspects = {d.aspect: (d.a, d.b) for d in result.differences}
    assert aspects["constraints"] == ("none", "max words: 80")
    assert aspects["critiques"] == (
        "revision 0: revise (0.50); revision 1: approved (1.00)",
        "revision 0: approved (1.00)",
    )
    assert "Second" in aspects["report"][0]
    assert "Short" in aspects["report"][1]
    assert "status" not in aspects  # both completed


async def test_a_workflow_does_not_diverge_from_itself() -> None:
    """The same history twice: no divergence, nothing side by side."""
    store = await _golden("forked")
    records = await store.read(PARENT)
    result = queries.diff(records, records)
    assert not result.diverged
    assert result.common == len(records)
    assert result.differences == []
    assert result.as_dict()["diverged"] is False


async def test_diff_compares_the_effective_history_only() -> None:
    """A rolled-back workflow compares by what is in effect: its abandoned first run does not
    count, so it matches a history of the second run alone up to the rollback's own markers."""
    store = await _golden("rolled_back")
    records = await store.read(ROLLBACK)
    effective = [r for r in records if r.version <= 3 or r.version >= 14]
    result = queries.diff(records, effective)
    assert not result.diverged
    assert result.differences == [
        queries.Difference("run", "2", "1"),
    ]
