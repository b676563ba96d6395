"""The report workflow on LangGraph, checkpointed in Postgres after every step.

A ``StateGraph`` over :class:`~tests.bench.peers.steps.ReportState`: one node per agent step
plus the two endings, and one router after each node that asks ``next_step``. The checkpointer
is ``AsyncPostgresSaver`` (``langgraph-checkpoint-postgres``) on a pool of its own, and every run
uses ``durability="sync"``: each step's checkpoint is committed before the next step starts, the
guarantee agentlog gives by appending each step's events before publishing the next task.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from tests.bench.peers.steps import (
    AgentStep,
    AgentSteps,
    ReportState,
    StepName,
    finish,
    fold,
    new_report,
    next_step,
)

__all__ = ["LangGraphReports"]

_AGENT_STEPS: tuple[AgentStep, ...] = ("search", "summarize", "write", "critique")


class LangGraphReports:
    """Runs report workflows as LangGraph threads; ``async with`` opens the checkpointer.

    ``database_url`` names the database the checkpoints go to (its tables are created on
    entry); ``pool_size`` is the checkpointer's connection pool.
    """

    def __init__(self, agents: AgentSteps, database_url: str, *, pool_size: int = 10) -> None:
        self._agents = agents
        self._pool = AsyncConnectionPool(
            database_url,
            min_size=1,
            max_size=pool_size,
            open=False,
            # What AsyncPostgresSaver.from_conn_string sets: the saver commits per statement.
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        )
        self._graph: Any = None

    async def __aenter__(self) -> Self:
        await self._pool.open(wait=True)
        saver = AsyncPostgresSaver(self._pool)  # type: ignore[arg-type]  # a dict_row pool
        await saver.setup()
        self._graph = self._build().compile(checkpointer=saver)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._pool.close()

    async def run(self, workflow_id: str, goal: str) -> ReportState:
        """Run one workflow to its end; returns its final state."""
        config = {"configurable": {"thread_id": workflow_id}}
        final: ReportState = await self._graph.ainvoke(
            new_report(workflow_id, goal), config, durability="sync"
        )
        return final

    def _build(self) -> StateGraph[ReportState]:
        policy = self._agents.policy
        graph: StateGraph[ReportState] = StateGraph(ReportState)
        for step in _AGENT_STEPS:
            graph.add_node(step, self._agent_node(step))
        graph.add_node("complete", lambda state: finish(state, "complete"))
        graph.add_node("fail", lambda state: finish(state, "fail"))

        def route(state: ReportState) -> StepName:
            return next_step(state, policy)

        targets: dict[str, str] = {name: name for name in (*_AGENT_STEPS, "complete", "fail")}
        graph.add_conditional_edges(START, route, targets)  # type: ignore[arg-type]
        for step in _AGENT_STEPS:
            graph.add_conditional_edges(step, route, targets)  # type: ignore[arg-type]
        graph.add_edge("complete", END)
        graph.add_edge("fail", END)
        return graph

    def _agent_node(self, step: AgentStep) -> Callable[[ReportState], Awaitable[dict[str, Any]]]:
        async def node(state: ReportState) -> dict[str, Any]:
            new = fold(state, step, await self._agents.run(step, state))
            # Only the channels the step changed, as a LangGraph node returns them: the
            # checkpointer stores a new blob only for a channel that was written.
            return {key: value for key, value in new.items() if state.get(key) != value}

        node.__name__ = step
        return node
