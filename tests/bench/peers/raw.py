"""The storage baseline: the workflow's steps as raw rows, one per agent step, nothing else.

What any durable orchestrator must keep at least: each step's output, under its workflow and
step number, so a restart can go on after the last finished step. The same agents as every
system (``AgentSteps``) run the same goal; each result goes into one row of a plain table
(``json``, as agentlog stores events: the text as written, no binary re-encoding) with a
primary key. The table's growth (heap, index, TOAST) per workflow is the denominator of
``bytes_stored_per_workflow ÷ raw``.
"""

from __future__ import annotations

import json

import asyncpg

from tests.bench.peers.measure import Storage
from tests.bench.peers.steps import AgentSteps, finish, fold, new_report, next_step

__all__ = ["RAW_DB", "raw_bytes_per_workflow"]

RAW_DB = "bench_raw"
_TABLE = """
CREATE TABLE IF NOT EXISTS raw_steps (
    workflow_id  text    NOT NULL,
    step         integer NOT NULL,
    agent        text    NOT NULL,
    output       json    NOT NULL,
    PRIMARY KEY (workflow_id, step)
)
"""


async def raw_bytes_per_workflow(
    agents: AgentSteps, database_url: str, goal: str, workflows: int
) -> dict[str, float]:
    """Run ``workflows`` workflows, one row per step; bytes and rows stored per workflow."""
    storage = Storage(RAW_DB, ("public",))
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(_TABLE)
        before = await storage.bytes(database_url)
        rows = 0
        for i in range(workflows):
            workflow_id = f"wf-raw-{i:05d}"
            state = new_report(workflow_id, goal)
            while True:
                step = next_step(state, agents.policy)
                if step == "complete" or step == "fail":
                    finish(state, step)
                    break
                output = await agents.run(step, state)
                rows += 1
                await conn.execute(
                    "INSERT INTO raw_steps (workflow_id, step, agent, output)"
                    " VALUES ($1, $2, $3, $4)",
                    workflow_id,
                    state["steps"] + 1,
                    step,
                    json.dumps(output),
                )
                state = fold(state, step, output)
        after = await storage.bytes(database_url)
    finally:
        await conn.close()
    return {
        "bytes_per_workflow": round((after - before) / workflows),
        "rows_per_workflow": rows / workflows,
        "workflows": workflows,
    }
