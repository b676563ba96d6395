"""The report workflow on LangGraph, checkpointed in Postgres after every step.

A ``StateGraph`` over :class:`~tests.bench.peers.steps.ReportState`: one node per agent step
plus the two endings, and one router after each node that asks ``next_step``. The checkpointer
is ``AsyncPostgresSaver`` (``langgraph-checkpoint-postgres``) on a pool of its own, and every run
uses ``durability="sync"``: each step's checkpoint is committed before the next step starts, the
guarantee agentlog gives by appending each step's events before publishing the next task.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self, cast

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
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
            connection_class=AsyncConnection[DictRow],
            min_size=1,
            max_size=pool_size,
            open=False,
            # What AsyncPostgresSaver.from_conn_string sets: the saver commits per statement.
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        )
        self._graph: CompiledStateGraph[ReportState] | None = None

    async def __aenter__(self) -> Self:
        await self._pool.open(wait=True)
        saver = AsyncPostgresSaver(self._pool)
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
        assert self._graph is not None, "use `async with LangGraphReports(...)`"
        final: dict[str, Any] = await self._graph.ainvoke(
            new_report(workflow_id, goal),
            {"configurable": {"thread_id": workflow_id}},
            durability="sync",
        )
        return cast(ReportState, final)

    def _build(self) -> StateGraph[ReportState]:
        policy = self._agents.policy
        graph: StateGraph[ReportState] = StateGraph(ReportState)
        for step in _AGENT_STEPS:
            graph.add_node(step, _AgentNode(self._agents, step))
        graph.add_node("complete", lambda state: finish(state, "complete"))
        graph.add_node("fail", lambda state: finish(state, "fail"))

        def route(state: ReportState) -> StepName:
            return next_step(state, policy)

        targets = [*_AGENT_STEPS, "complete", "fail"]
        graph.add_conditional_edges(START, route, targets)
        for step in _AGENT_STEPS:
            graph.add_conditional_edges(step, route, targets)
        graph.add_edge("complete", END)
        graph.add_edge("fail", END)
        return graph


class _AgentNode:
    """One agent step as a graph node: runs the agent, returns the channels it changed."""

    def __init__(self, agents: AgentSteps, step: AgentStep) -> None:
        self._agents = agents
        self._step = step

    async def __call__(self, state: ReportState) -> dict[str, Any]:
        new = fold(state, self._step, await self._agents.run(self._step, state))
        # Only what the step changed, as a LangGraph node returns it: the checkpointer stores
        # a new blob only for a channel that was written.
        return {key: value for key, value in new.items() if state.get(key) != value}
