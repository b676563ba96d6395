"""The console's pages over the golden histories: workflows, a timeline with its abandoned
branch and ledger, the state at an event, a diff, dead letters, a trace, live updates, refusals
and escaping. Open mode (no sign-in), as on a developer's loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from schemas.events import WorkflowPolicy
from schemas.messages import GoalSubmitted
from schemas.topics import GOALS
from services.supervisor.handler import Supervisor
from shared.auth.settings import AuthSettings, build_authenticator
from shared.console import Access, MemoryDeadLetters, create_app
from shared.eventstore import InMemoryEventStore, NewEvent
from shared.runtime.clock import SystemClock
from shared.telemetry.spans import SpanRecord
from shared.transport import InMemoryBroker, InMemoryBus, Subscription
from tests.unit.test_console_access import Harness, client, keys
from tests.unit.test_readside import load_golden
from tests.unit.test_supervisor import _delivery

__all__ = ["keys"]  # the module-scoped keys fixture, shared with the access tests


@pytest.fixture
async def golden(keys: Path) -> Harness:
    """The rollback and fork golden histories in a fresh store."""
    harness = Harness(InMemoryEventStore(), InMemoryBroker(), keys)
    await load_golden(harness.store, "rolled_back", "forked")
    return harness


def open_app(harness: Harness, state_dir: Path | None = None) -> FastAPI:
    """The console in open mode, with a short live-stream lifetime for tests."""
    return create_app(
        store=harness.store,
        bus_for=lambda p: InMemoryBus(service="console", broker=harness.broker),
        dead_letters=MemoryDeadLetters(harness.broker),
        access=Access(users={}, secret=b"s" * 32),
        state_dir=state_dir,
        poll_s=0.01,
        live_lifetime_s=0.2,
    )


@pytest.fixture
async def c(golden: Harness) -> AsyncIterator[httpx.AsyncClient]:
    """A loopback client of the console over the golden store."""
    async with client(open_app(golden)) as opened:
        yield opened


async def test_the_workflows_page_filters_by_status(c: httpx.AsyncClient) -> None:
    """All workflows by default; ``?status=`` keeps only that status, the rows fragment too."""
    page = await c.get("/workflows")
    assert page.status_code == 200
    for workflow_id in ("wf-golden-rollback", "wf-golden-parent", "wf-golden-fork"):
        assert f">{workflow_id}<" in page.text
    assert 'data-live="/live/workflows"' in page.text
    failed = await c.get("/workflows/rows", params={"status": "failed"})
    assert "wf-golden-rollback" not in failed.text
    completed = await c.get("/workflows/rows", params={"status": "completed"})
    assert "wf-golden-rollback" in completed.text


async def test_a_workflow_shows_its_timeline_branches_and_ledger(c: httpx.AsyncClient) -> None:
    """The rolled-back workflow: abandoned rows marked, the branch listed, state links, budget."""
    page = await c.get("/workflows/wf-golden-rollback")
    assert page.status_code == 200
    assert page.text.count('class="abandoned"') >= 9
    assert "Abandoned branches" in page.text
    assert "/workflows/wf-golden-rollback/state/12" in page.text
    assert 'id="budget"' in page.text
    assert 'id="rollback-form"' in page.text
    missing = await c.get("/workflows/wf-nobody")
    assert missing.status_code == 404


async def test_the_state_at_an_event_is_one_click_away(c: httpx.AsyncClient) -> None:
    """The state page folds events 1..v only and shows the event's data; no such v is 404."""
    page = await c.get("/workflows/wf-golden-rollback/state/13")
    assert page.status_code == 200
    assert "after v13" in page.text
    assert "WorkflowRolledBack" in page.text
    assert "<dt>run</dt><dd>2</dd>" in page.text
    assert (await c.get("/workflows/wf-golden-rollback/state/999")).status_code == 404


async def test_the_diff_page_shows_where_two_runs_part(c: httpx.AsyncClient) -> None:
    """A fork and its parent share steps up to the fork point, then differ in constraints."""
    page = await c.get("/diff", params={"a": "wf-golden-parent", "b": "wf-golden-fork"})
    assert "They share 3 steps" in page.text
    assert "constraints" in page.text
    unknown = await c.get("/diff", params={"a": "wf-golden-parent", "b": "wf-nope"})
    assert "no workflow &#39;wf-nope&#39;" in unknown.text


async def test_a_refused_rollback_says_why_and_publishes_nothing(
    c: httpx.AsyncClient, golden: Harness
) -> None:
    """Rolling back to the final event is refused by the store check, with the reason."""
    page = await c.get("/workflows/wf-golden-rollback")
    token = page.text.split('name="csrf" value="')[1].split('"')[0]
    form = {"csrf": token, "to_version": "18", "reason": "again"}
    refused = await c.post("/workflows/wf-golden-rollback/rollback", data=form)
    assert refused.status_code == 409
    assert "cannot roll wf-golden-rollback back" in refused.text
    assert golden.published() == 0


async def test_live_streams_say_when_a_workflow_changed(c: httpx.AsyncClient) -> None:
    """The event stream sends ``change`` at once, then ends after its lifetime."""
    response = await c.get("/live/workflows/wf-golden-rollback")
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "event: change" in response.text


async def test_a_workflows_live_stream_wakes_on_its_append_not_at_the_next_poll(
    golden: Harness,
) -> None:
    """With a 30 s poll, an append to the workflow still reaches an open stream at once."""
    app = create_app(
        store=golden.store,
        bus_for=lambda p: InMemoryBus(service="console", broker=golden.broker),
        dead_letters=MemoryDeadLetters(golden.broker),
        access=Access(users={}, secret=b"s" * 32),
        poll_s=30,
        live_lifetime_s=1.0,
    )
    workflow_id = "wf-golden-rollback"

    async def append_soon() -> None:
        await asyncio.sleep(0.2)
        version = await golden.store.stream_version(workflow_id)
        await golden.store.append(workflow_id, [NewEvent("Noted", {})], version)

    async with client(app) as opened:
        appending = asyncio.create_task(append_soon())
        response = await opened.get(f"/live/workflows/{workflow_id}")
        await appending
    assert "data: 1\n" in response.text
    assert "data: 2\n" in response.text


async def test_dead_letters_are_listed_with_their_reasons(golden: Harness) -> None:
    """An unsigned goal refused by a verifying consumer shows up with reason unauthenticated."""
    authenticator = build_authenticator(AuthSettings(keys_dir=golden.keys), golden.keys)
    supervisor = Supervisor(golden.store, SystemClock(), WorkflowPolicy())
    bus = InMemoryBus(service="supervisor", broker=golden.broker, topics=[GOALS])
    async with bus:
        await bus.subscribe(
            Subscription([GOALS], "g", supervisor.handle, "supervisor", authenticator=authenticator)
        )
        unsigned = InMemoryBus(service="stranger", broker=golden.broker)
        async with unsigned:
            forged = GoalSubmitted(workflow_id="wf-forged", goal="forged goal")
            await unsigned.publish(GOALS, forged, key="wf-forged")
        async with client(open_app(golden)) as c:
            for _ in range(100):
                page = await c.get("/dead-letters")
                if "unauthenticated" in page.text:
                    break
                await asyncio.sleep(0.02)
    assert "unauthenticated" in page.text
    assert "agentlog.goals[" in page.text


async def test_user_text_is_escaped(golden: Harness) -> None:
    """A goal holding markup is shown as text, never as markup."""
    supervisor = Supervisor(golden.store, SystemClock(), WorkflowPolicy())
    goal = GoalSubmitted(workflow_id="wf-xss", goal="<script>alert(1)</script> explain")
    await supervisor.handle(_delivery(goal, "goal-xss"))
    async with client(open_app(golden)) as c:
        page = await c.get("/workflows/wf-xss")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_the_trace_page_draws_recorded_spans(golden: Harness, tmp_path: Path) -> None:
    """Spans exported for the workflow are drawn as a tree; without any, a note says why."""
    async with client(open_app(golden, tmp_path)) as c:
        empty = await c.get("/workflows/wf-golden-rollback/trace")
        assert "no spans for wf-golden-rollback" in empty.text
        (tmp_path / "traces").mkdir()
        span = SpanRecord(
            trace_id="ab" * 16,
            span_id="cd" * 8,
            parent_id=None,
            name="supervisor.decide",
            service="agentlog-supervisor",
            start_ns=1,
            end_ns=2_000_001,
            attributes={"agentlog.workflow_id": "wf-golden-rollback"},
        )
        (tmp_path / "traces" / "supervisor.jsonl").write_text(span.to_json() + "\n")
        page = await c.get("/workflows/wf-golden-rollback/trace")
    assert "supervisor.decide  [supervisor]  2.0 ms" in page.text


def test_the_demo_names_the_console_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make demo` ends with where `agentlog console` will answer, port setting included."""
    from shared.cli.demo import _console_hint

    assert _console_hint(True) == "run `agentlog up && agentlog console` → http://127.0.0.1:8780"
    monkeypatch.setenv("AGENTLOG_CONSOLE_PORT", "9001")
    assert _console_hint(False).endswith("http://127.0.0.1:9001")
