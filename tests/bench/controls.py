"""Cost of the agent controls per step: the budget check and the cycle fingerprints, next to
the whole decision they are part of (``decide`` on one result).

    python -m tests.bench.controls [n]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from schemas.controls import Budget
from schemas.events import WorkflowPolicy
from schemas.messages import DraftResult, GoalSubmitted, Passage, Provenance, SearchResult
from shared.domain import GoalReceived, ResultReceived, decide, replay
from shared.domain.budget import exhausted_limit
from shared.domain.cycles import Step, find_cycle

__all__ = ["bench_controls"]

_T0 = datetime(2026, 11, 30, tzinfo=UTC)
_PROV = Provenance(
    provider="offline", model="m", strategy_version="1", prompt_tokens=900, completion_tokens=400
)


def _per_op_us(op: Callable[[], object], n: int) -> float:
    for _ in range(min(n, 100)):
        op()
    started = time.perf_counter()
    for _ in range(n):
        op()
    return (time.perf_counter() - started) / n * 1e6


def bench_controls(n: int = 2_000) -> dict[str, float]:
    """Microseconds per budget check, per cycle check (worst case), and per whole decision."""
    policy = WorkflowPolicy(budget=Budget(max_tokens=10**9, max_usd=100.0, max_steps=10**6))
    goal = GoalSubmitted(workflow_id="wf-bench", goal="Explain how replay rebuilds state")
    history = decide(replay("wf-bench", []), GoalReceived(goal, policy, _T0))
    state = replay("wf-bench", history)
    search = next(iter(state.tasks.values()))
    passages = [Passage(source_id=f"d{i}#1", text="replay folds events " * 20) for i in range(8)]
    result = SearchResult(
        workflow_id="wf-bench",
        task_id=search.task_id,
        attempt=1,
        provenance=_PROV,
        passages=passages,
    )
    history += decide(state, ResultReceived(result, _T0 + timedelta(seconds=1)))
    state = replay("wf-bench", history)
    writer = next(t for t in state.tasks.values() if t.open)
    draft = DraftResult(
        workflow_id="wf-bench",
        task_id=writer.task_id,
        attempt=1,
        provenance=_PROV,
        draft="# Report\n\n" + "Replay rebuilds state [d0#1]. " * 80,
        cited_source_ids=["d0#1"],
    )
    now = _T0 + timedelta(seconds=2)
    budget_us = _per_op_us(lambda: exhausted_limit(state, now), n)
    # A cycle check after a writer step: outputs are compared first, commands hashed only when
    # the last three answers are the same (the worst case, measured here).
    same = [Step(writer.command, {"draft": draft.draft})] * 3
    fingerprint_us = _per_op_us(lambda: find_cycle(same), n)
    decided = decide(state, ResultReceived(draft, now))
    assert [e.event_type() for e in decided] == ["DraftWritten", "TaskScheduled"], decided
    decide_us = _per_op_us(lambda: decide(state, ResultReceived(draft, now)), n // 4)
    return {
        "n": float(n),
        "budget_check_us": budget_us,
        "cycle_check_worst_us": fingerprint_us,
        "decide_one_result_us": decide_us,
        "controls_share_of_decide": (budget_us + fingerprint_us) / decide_us,
    }


if __name__ == "__main__":
    print(bench_controls(int(sys.argv[1]) if len(sys.argv) > 1 else 2_000))
