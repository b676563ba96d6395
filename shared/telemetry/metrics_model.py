"""Interceptors on a worker's two seams: the model port (tokens, cost) and ``perform`` (latency).

``MetricsModel`` sits outside ``MeteredModel``, which prices each call, so it counts the cost
the result will report. A failed call that was billed (its ``ModelError`` carries provenance)
counts too, as budgets do. ``timed_perform`` measures one task attempt from start to result,
whatever the agent does inside it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from schemas.messages import TaskCommand, TaskResult
from shared.llm.forwarding import ForwardingModel
from shared.llm.port import Completion, CompletionRequest, LanguageModel, ModelError
from shared.runtime.worker import Perform
from shared.telemetry.metrics import Metrics, ModelMetrics

__all__ = ["MetricsModel", "timed_perform"]


class MetricsModel(ForwardingModel):
    """Delegates to ``inner``; counts the tokens and cost of every call by agent and model."""

    def __init__(self, inner: LanguageModel, metrics: Metrics, *, agent: str) -> None:
        super().__init__(inner)
        self._metrics: ModelMetrics = metrics.models
        self._agent = agent

    async def complete(self, request: CompletionRequest) -> Completion:
        try:
            completion = await self.inner.complete(request)
        except ModelError as exc:
            used = exc.provenance
            if used is not None:
                self._count(used.model, used.prompt_tokens, used.completion_tokens, used.cost_usd)
            raise
        self._count(
            completion.model,
            completion.prompt_tokens,
            completion.completion_tokens,
            completion.cost_usd,
        )
        return completion

    def _count(self, model: str, prompt: int, completion: int, cost_usd: float) -> None:
        tokens = self._metrics.tokens
        tokens.labels(self._agent, model, "input").inc(max(0, prompt))
        tokens.labels(self._agent, model, "output").inc(max(0, completion))
        self._metrics.cost_usd.labels(self._agent, model).inc(max(0.0, cost_usd))


def timed_perform(
    perform: Perform,
    metrics: Metrics,
    *,
    agent: str,
    clock: Callable[[], float] = time.perf_counter,
) -> Perform:
    """``perform`` observed by ``agentlog_step_duration_seconds{agent, outcome}``.

    ``outcome`` is ``ok``, ``error`` (the worker answers with a TaskFailure) or ``cancelled``
    (the kill-switch abandoned it, or the service is stopping).
    """
    duration = metrics.steps.duration

    async def timed(task: TaskCommand) -> TaskResult:
        started = clock()
        outcome = "error"
        try:
            result = await perform(task)
            outcome = "ok"
            return result
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            duration.labels(agent, outcome).observe(clock() - started)

    return timed
