"""The report workflow on agentlog: the five services as processes, a goal in, a completion out.

The driver is an upstream system and a downstream one at once: it publishes each goal to
``agentlog.goals`` (signed as ``upstream``) and waits for its completion on
``agentlog.completions``, the way the workflows bench does. Needs no ``bench`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from schemas.messages import CompletionEvent, GoalSubmitted
from schemas.topics import COMPLETIONS, GOALS
from shared.runtime.processes import ServiceProcesses
from shared.runtime.wiring import kafka_bus
from shared.settings import Settings
from shared.transport import Delivery, Subscription
from shared.transport.kafka import KafkaBus

__all__ = ["AgentlogReports"]

_TIMEOUT_S = 300.0
#: How often a waiting workflow checks that every service still runs.
_POLL_S = 1.0


class AgentlogReports:
    """Runs report workflows on agentlog's services; ``async with`` starts and stops them."""

    def __init__(self, settings: Settings, env: Mapping[str, str], log_dir: Path) -> None:
        self._settings = settings
        self.services = ServiceProcesses(env, log_dir)
        self._bus: KafkaBus | None = None
        self._done: dict[str, CompletionEvent] = {}
        self._changed = asyncio.Condition()

    @property
    def pids(self) -> dict[str, int]:
        """Each service's process id."""
        return {name: proc.pid for name, proc in self.services.processes.items()}

    async def __aenter__(self) -> Self:
        self.services.start()
        try:
            # Goals are signed as an upstream system, as the supervisor requires.
            self._bus = kafka_bus(
                self._settings, service="bench", topics=[GOALS, COMPLETIONS], principal="upstream"
            )
            await self._bus.__aenter__()
            group = f"bench-compare-{uuid.uuid4().hex[:6]}"
            await self._bus.subscribe(Subscription([COMPLETIONS], group, self._handle, "bench"))
        except BaseException:
            self.services.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._bus is not None:
                await self._bus.__aexit__(exc_type, exc, tb)
        finally:
            self.services.stop()

    async def _handle(self, delivery: Delivery) -> None:
        message = delivery.message
        if isinstance(message, CompletionEvent):
            async with self._changed:
                self._done.setdefault(message.workflow_id, message)
                self._changed.notify_all()

    async def run(self, workflow_id: str, goal: str) -> CompletionEvent:
        """Publish the goal and wait for its completion event."""
        assert self._bus is not None, "use `async with AgentlogReports(...)`"
        goal_message = GoalSubmitted(workflow_id=workflow_id, goal=goal)
        await self._bus.publish(GOALS, goal_message, key=workflow_id)
        deadline = asyncio.get_running_loop().time() + _TIMEOUT_S
        while workflow_id not in self._done:
            # A service that exited fails the run now, not after the timeout.
            dead = self.services.dead()
            if dead:
                tails = "\n".join(
                    f"--- {name} (exit {code}):\n{self.services.log_tail(name, 15)}"
                    for name, code in dead.items()
                )
                raise RuntimeError(f"agentlog services exited: {dead}\n{tails}")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(
                    f"no completion for {workflow_id} in {_TIMEOUT_S:.0f} s; the supervisor's"
                    f" log ends:\n{self.services.log_tail('supervisor', 20)}"
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_POLL_S), self._changed:
                    await self._changed.wait_for(lambda: workflow_id in self._done)
        return self._done.pop(workflow_id)
