"""The web console in a real browser (Debian's Chromium, headless, driven by Playwright) against
the five services as processes: a refused sign-in, sign-in, a goal submitted and followed live
to its gated delivery, an event's state, the approval, a rollback and the new run's completion.

``AGENTLOG_SCREENSHOTS=1`` also saves the main pages to docs/screenshots/.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Page, async_playwright, expect

from schemas.messages import GoalSubmitted
from shared.auth import Principal, Role
from shared.auth.keys import ensure_principal_key
from shared.console.access import hash_password
from shared.eventstore.postgres import PostgresEventStore
from shared.runtime.processes import ServiceProcesses
from shared.transport.envelope import encode_envelope
from tests.conftest import StackInfo
from tests.e2e.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
USER, PASSWORD = "alice", "alice-console-pw"
SHOTS = REPO / "docs" / "screenshots"
LIVE_MS = 45_000  # the longest a live page may take to show a change
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def console_fleet(
    service_env: dict[str, str], stack_info: StackInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """alice's key trusted, the five services started after it, and `agentlog console` with
    alice as an operator; yields the console's address."""
    ensure_principal_key(stack_info.keys_dir, Principal(USER, Role.OPERATOR))
    logs = tmp_path_factory.mktemp("console-logs")
    # The services write their spans where the console reads them: its trace page shows
    # what they really exported.
    state_dir = tmp_path_factory.mktemp("console-state")
    service_env = {
        **service_env,
        "AGENTLOG_STATE_DIR": str(state_dir),
        "AGENTLOG_OTEL_EXPORTER": "file",
    }
    port = _free_port()
    users = {USER: {"role": "operator", "password_hash": hash_password(PASSWORD)}}
    env = {
        **os.environ,
        **service_env,
        "AGENTLOG_CONSOLE_USERS": json.dumps(users),
        "AGENTLOG_CONSOLE_PORT": str(port),
    }
    with ServiceProcesses(service_env, logs, cwd=REPO), (logs / "console.log").open("ab") as log:
        console = subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "console"],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        address = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(address, console, logs / "console.log")
            yield address
        finally:
            console.terminate()
            assert console.wait(timeout=15) == 0, (logs / "console.log").read_text()[-2000:]


def _wait_until_up(address: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90  # a loaded 2-core machine imports slowly
    while time.monotonic() < deadline:
        assert process.poll() is None, f"console exited: {log.read_text()[-2000:]}"
        try:
            if httpx.get(f"{address}/signin", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"console did not answer: {log.read_text()[-2000:]}")


@pytest.fixture
async def page(console_fleet: str) -> AsyncIterator[Page]:
    """A fresh headless Chromium page (no browser download: Debian's binary)."""
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = await browser.new_context(viewport={"width": 1280, "height": 860})
        yield await context.new_page()
        await browser.close()


async def _shot(page: Page, name: str) -> None:
    if os.environ.get("AGENTLOG_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def _unsigned_goal(producer: AIOKafkaProducer) -> str:
    """Publish a goal nobody signed (the supervisor dead-letters it); returns its key."""
    workflow_id = f"wf-forged-{uuid.uuid4().hex[:8]}"
    goal = GoalSubmitted(workflow_id=workflow_id, goal="start work without a key")
    envelope = encode_envelope(goal, key=workflow_id, source="stranger", subject=workflow_id)
    await producer.send_and_wait(
        "agentlog.goals", envelope.value, key=envelope.key, headers=list(envelope.headers)
    )
    return workflow_id


async def _live_status(page: Page, status: str, run: int = 1) -> None:
    """Wait, without reloading, until the live region shows the status in that run."""
    await expect(page.locator("#status")).to_have_text(status, timeout=LIVE_MS)
    await expect(page.locator("#run")).to_have_text(str(run), timeout=LIVE_MS)


async def test_an_operator_drives_a_workflow_from_the_browser(
    page: Page, console_fleet: str, stack_info: StackInfo, producer: AIOKafkaProducer
) -> None:
    """Sign-in refused, then signed in: submit, approve delivery live, open a state, roll back,
    approve again and see the second run complete, fork with other constraints and diff the two,
    find a forged goal among the dead letters; every change recorded as alice."""
    base = console_fleet
    await page.goto(f"{base}/workflows")
    assert page.url == f"{base}/signin?next=/workflows"
    await page.fill("input[name=username]", USER)
    await page.fill("input[name=password]", "not-the-password")
    await page.click("button[type=submit]")
    await expect(page.locator("#signin-error")).to_have_text("wrong user name or password")
    await _shot(page, "signin-refused")

    await page.fill("input[name=username]", USER)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("#me")).to_have_text(USER)

    workflow_id = f"wf-console-{uuid.uuid4().hex[:8]}"
    form = page.locator("#submit-form")
    await form.locator("textarea[name=goal]").fill("Explain how replay rebuilds workflow state")
    await form.locator("input[name=workflow_id]").fill(workflow_id)
    await form.locator("input[value=deliver]").check()
    await form.locator("button[type=submit]").click()
    assert page.url.startswith(f"{base}/workflows/{workflow_id}")
    await _live_status(page, "pending_approval")
    await expect(page.locator("#waiting")).to_contain_text("deliver the approved report")
    await _shot(page, "workflow-pending")

    await page.locator("#waiting button.approve").click()
    await _live_status(page, "completed")

    draft = page.locator("#timeline tr[data-type=DraftWritten]").first
    version = await draft.get_attribute("data-version")
    await draft.locator("a.state-link").click()
    await expect(page.locator("h1")).to_contain_text(f"after v{version}")
    await expect(page.locator("#state")).to_contain_text("revision 0")
    await _shot(page, "state-at-event")

    await page.goto(f"{base}/workflows/{workflow_id}")
    rollback = page.locator("#rollback-form")
    await rollback.locator("select[name=to_version]").select_option(str(version))
    await rollback.locator("input[name=reason]").fill("critique the draft again")
    await rollback.locator("button[type=submit]").click()
    await _live_status(page, "pending_approval", run=2)
    await expect(page.locator("#timeline tr.abandoned").first).to_be_visible()

    await page.goto(f"{base}/approvals")
    waiting = page.locator(".waiting", has_text=workflow_id)
    await _shot(page, "approvals")
    await waiting.locator("button.approve").click()
    await _live_status(page, "completed", run=2)
    await _shot(page, "workflow-rolled-back")

    # Spans the service processes exported (each flushes its batch every few seconds): the
    # supervisor's decisions and each agent's step.
    expected = ("decide", "step search", "step writer", "step critic")
    for _ in range(40):  # each process flushes on its own schedule: wait for all of them
        await page.goto(f"{base}/workflows/{workflow_id}/trace")
        shown = await page.locator("main").inner_text()
        if all(span in shown for span in expected):
            break
        await asyncio.sleep(0.5)
    for span in expected:
        await expect(page.locator("main")).to_contain_text(span)
    await _shot(page, "trace")

    fork_id = f"{workflow_id}-fork"
    await page.goto(f"{base}/workflows/{workflow_id}")
    fork = page.locator("#fork-form")
    await fork.locator("select[name=at_version]").select_option(str(version))
    await fork.locator("input[name=new_workflow_id]").fill(fork_id)
    await fork.locator("textarea[name=constraints]").fill("avoid: jargon")
    await fork.locator("button[type=submit]").click()
    waiting_or_done = re.compile("pending_approval|completed")
    await expect(page.locator("#status")).to_have_text(waiting_or_done, timeout=LIVE_MS)
    await page.goto(f"{base}/diff?a={workflow_id}&b={fork_id}")
    await expect(page.locator("#diff")).to_contain_text("avoid: jargon")
    await _shot(page, "diff")

    await page.goto(f"{base}/workflows")
    await expect(page.locator("#workflow-rows")).to_contain_text(workflow_id)
    await _shot(page, "workflows")
    forged = await _unsigned_goal(producer)
    await page.goto(f"{base}/dead-letters")
    await expect(page.locator("#dead-letters")).to_contain_text(forged, timeout=LIVE_MS)
    await expect(page.locator("#dead-letters tr", has_text=forged)).to_contain_text(
        "unauthenticated"
    )
    await _shot(page, "dead-letters")

    async with PostgresEventStore(stack_info.database_url, pool_max=1) as store:
        events = [(r.type, r.data) for r in await store.read(workflow_id)]
    started = next(d for t, d in events if t == "WorkflowStarted")
    grants = [d["approver"] for t, d in events if t == "ApprovalGranted"]
    rollbacks = [d["requested_by"] for t, d in events if t == "WorkflowRolledBack"]
    assert (started["submitted_by"], grants, rollbacks) == (USER, [USER, USER], [USER])
