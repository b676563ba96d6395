"""The kill-switch reaches work in flight: ``agentlog cancel`` stops a running model call.

The five services run as processes with the OpenAI-compatible adapter pointed at a fake
provider whose chat completion takes 40 seconds (a slow model, not a mock of our code). Once the
writer's request is in flight at the provider, ``python -m shared.cli cancel`` (signed as the
operator) cancels the workflow. The writer sees WorkflowCancelled on agentlog.workflow-events,
cancels its running call, and the provider sees the client hang up seconds later, long before
its answer or the task's 90-second deadline; nothing is recorded for the abandoned draft.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer

from shared.eventstore.postgres import PostgresEventStore
from shared.runtime.processes import ServiceProcesses
from tests.conftest import StackInfo
from tests.e2e.upstream import publish_goal

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
# The kill-switch reaches running work through the audit feed each worker follows in a group of
# its own: broker-sensitive (group per process, read from the start), so both brokers.
BROKERS = ("tansu", "kafka")

REPO = Path(__file__).resolve().parents[2]
GOAL = "Explain how replay rebuilds workflow state"
ANSWER_AFTER_S = 40.0


@dataclass
class SlowProvider:
    """A chat-completions server that answers after ``ANSWER_AFTER_S`` unless the client leaves.

    It serves from its own thread and loop, so service processes reach it whatever the test's
    loop is doing; ``in_flight`` and ``hung_up`` are thread-safe events the test waits on.
    """

    base_url: str = ""
    in_flight: threading.Event = field(default_factory=threading.Event)
    hung_up: threading.Event = field(default_factory=threading.Event)
    #: Seconds from each request's arrival to the client closing its connection.
    hang_ups: list[float] = field(default_factory=list)
    #: Wall-clock time of the last hang-up (compared with the event store's timestamps).
    hung_up_at: float = 0.0
    answered: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    def start(self) -> None:
        """Listen on an ephemeral port in a background thread."""
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._listen())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=serve, name="slow-provider", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the slow provider did not start")

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is None or self._thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _listen(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}/v1"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body: dict[str, Any] = await request.json()
        arrived = time.monotonic()
        self.in_flight.set()
        try:
            while time.monotonic() - arrived < ANSWER_AFTER_S:
                transport = request.transport
                if transport is None or transport.is_closing():
                    return self._hang_up(arrived)
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:  # aiohttp cancels handlers of closed connections
            self._hang_up(arrived)
            raise
        self.answered += 1
        text = "A late answer. [docs/replay.md#1]"
        return web.json_response(
            {
                "id": "chatcmpl-slow",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": text},
                    }
                ],
            }
        )

    def _hang_up(self, arrived: float) -> web.Response:
        self.hung_up_at = time.time()
        self.hang_ups.append(time.monotonic() - arrived)
        self.hung_up.set()
        return web.Response(status=499)


@pytest.fixture
def provider() -> Iterator[SlowProvider]:
    """A fresh slow provider for each test (each broker's run counts its own calls)."""
    slow = SlowProvider()
    slow.start()
    try:
        yield slow
    finally:
        slow.stop()


async def _when_cancelled(database_url: str, workflow_id: str) -> tuple[list[str], float]:
    """The workflow's event types once WorkflowCancelled is recorded, and when it was."""
    async with PostgresEventStore(database_url, pool_max=1) as store, asyncio.timeout(60):
        while True:
            records = await store.read(workflow_id)
            cancelled = [r for r in records if r.type == "WorkflowCancelled"]
            if cancelled:
                return [r.type for r in records], cancelled[0].recorded_at.timestamp()
            await asyncio.sleep(0.2)


async def _cancel(env: dict[str, str], workflow_id: str) -> tuple[int, str]:
    """``python -m shared.cli cancel``, as an operator at a terminal would run it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shared.cli",
        "cancel",
        workflow_id,
        "--reason",
        "kill-switch e2e",
        cwd=REPO,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, output.decode(errors="replace")


async def test_cancel_stops_the_writers_model_call_in_flight(
    service_env: dict[str, str],
    provider: SlowProvider,
    producer: AIOKafkaProducer,
    stack_info: StackInfo,
    tmp_path: Path,
) -> None:
    """The provider sees the writer hang up soon after the cancel; no draft is recorded."""
    env = {
        **service_env,
        "AGENTLOG_LLM_PROVIDER": "openai",
        "AGENTLOG_LLM_MODEL": "slow-model",
        "AGENTLOG_LLM_BASE_URL": provider.base_url,
        "AGENTLOG_LLM_API_KEY": "sk-test-kill-switch-0123456789",
        # Longer than the provider's answer: only the kill-switch can end the call early.
        "AGENTLOG_TASK_TIMEOUT_S": "90",
    }
    log_dir = tmp_path / "logs"
    fleet = ServiceProcesses(env, log_dir, cwd=REPO)
    fleet.start()
    try:
        workflow_id = await publish_goal(producer, GOAL, [])
        assert await asyncio.to_thread(provider.in_flight.wait, 120), "the writer never called"
        code, output = await _cancel(env, workflow_id)
        assert code == 0, output
        assert await asyncio.to_thread(provider.hung_up.wait, 30), "the call was not stopped"
        types, cancelled_at = await _when_cancelled(stack_info.database_url, workflow_id)
        assert fleet.dead() == {}, "a service died during the run"
    finally:
        codes = fleet.stop()
    assert all(code == 0 for code in codes.values()), f"unclean service exits: {codes}"

    [hang_up_s] = provider.hang_ups
    # Well before the answer (the CLI's own start-up is most of this), and promptly after the
    # supervisor recorded the cancel: the relay, the watch feed and the cancelled call.
    assert hang_up_s < ANSWER_AFTER_S / 2, f"hung up {hang_up_s:.1f} s after the request"
    reach_s = provider.hung_up_at - cancelled_at
    assert 0 <= reach_s < 5, f"hung up {reach_s:.2f} s after WorkflowCancelled was recorded"
    assert provider.answered == 0
    assert types[-1] == "WorkflowCancelled"
    assert "DraftWritten" not in types
    assert "TaskFailed" not in types  # the abandoned call published nothing
    writer_log = (log_dir / "writer.log").read_text(errors="replace")
    assert f"of {workflow_id} (WorkflowCancelled at version" in writer_log
