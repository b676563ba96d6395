"""The report workflow on DBOS Transact: one durable workflow, one DBOS step per agent call.

The workflow function is the loop the domain's rules describe (``next_step``, then the step,
then ``fold``); each agent call is a ``@DBOS.step`` whose output DBOS records in its system
database before the workflow goes on, so a restarted process resumes after the last recorded
step. The system database is a database of its own on the same Postgres server; the search step
reads the same index as agentlog's search service. DBOS is configured as it ships (its default
serializer, LISTEN/NOTIFY), except for a quiet log and a system-database pool
the size of agentlog's event-store pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from dbos import DBOS, DBOSConfig, SetWorkflowID

from tests.bench.peers.steps import (
    AgentStep,
    AgentSteps,
    ReportState,
    finish,
    fold,
    new_report,
    next_step,
)

__all__ = ["DBOSReports"]

_APP_NAME = "agentlog-bench"


class DBOSReports:
    """Runs report workflows on DBOS; ``async with`` launches DBOS and destroys it after.

    DBOS keeps one instance per process: only one ``DBOSReports`` may be open at a time.
    """

    def __init__(self, agents: AgentSteps, system_database_url: str, *, pool_size: int = 10):
        self._agents = agents
        self._config: DBOSConfig = {
            "name": _APP_NAME,
            "system_database_url": system_database_url,
            "sys_db_pool_size": pool_size,
            "log_level": "WARNING",
        }
        self._workflow: Callable[[str, str], Awaitable[ReportState]] | None = None

    async def __aenter__(self) -> Self:
        DBOS(config=self._config)
        self._workflow = self._register()
        DBOS.launch()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        DBOS.destroy(destroy_registry=True)

    async def run(self, workflow_id: str, goal: str) -> ReportState:
        """Run one workflow to its end under ``workflow_id``; returns its final state."""
        assert self._workflow is not None, "use `async with DBOSReports(...)`"
        with SetWorkflowID(workflow_id):
            return await self._workflow(workflow_id, goal)

    def _register(self) -> Callable[[str, str], Awaitable[ReportState]]:
        agents, policy = self._agents, self._agents.policy

        async def agent_step(step: AgentStep, state: ReportState) -> dict[str, Any]:
            return await agents.run(step, state)

        # Registered by calling the decorators, not with @: the same code type-checks whether
        # or not the bench extra (and so DBOS's types) is installed.
        recorded_step = DBOS.step(name="agent_step")(agent_step)

        async def report(workflow_id: str, goal: str) -> ReportState:
            state = new_report(workflow_id, goal)
            while True:
                step = next_step(state, policy)
                if step == "complete" or step == "fail":
                    return finish(state, step)
                state = fold(state, step, await recorded_step(step, state))

        workflow: Callable[[str, str], Awaitable[ReportState]] = DBOS.workflow(name="report")(
            report
        )
        return workflow
