"""The composition root every worker agent shares; each service supplies only its ``perform``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Protocol, TypeVar

from schemas.messages import AgentName, TaskCommand, TaskResult
from schemas.topics import RESULTS, task_topic
from shared.llm.factory import build_fallback_model, build_model
from shared.llm.metering import MeteredModel
from shared.llm.port import LanguageModel, ModelError
from shared.runtime.clock import SystemClock
from shared.runtime.lifecycle import configure_logging, run_until_signalled
from shared.runtime.registry import registered
from shared.runtime.wiring import authenticator_for, exit_on_misconfiguration, kafka_bus
from shared.runtime.worker import Perform, TaskWorker
from shared.settings import Settings, load_settings
from shared.telemetry.metrics_wiring import ServiceMetrics
from shared.telemetry.tracing import Tracing

__all__ = ["ModelWrapper", "PerformFactory", "model_agent", "serve_worker", "worker_entrypoint"]

_log = logging.getLogger(__name__)

_Task = TypeVar("_Task", bound=TaskCommand)

#: An interceptor the composition root puts around each model an agent builds (metrics).
ModelWrapper = Callable[[LanguageModel], LanguageModel]


def _unwrapped(model: LanguageModel) -> LanguageModel:
    return model


class PerformFactory(Protocol):
    """Builds the agent's ``perform`` from settings; resources it opens go on the exit stack,
    and each model it works through is passed through ``wrap_model``."""

    def __call__(
        self,
        settings: Settings,
        resources: contextlib.AsyncExitStack,
        wrap_model: ModelWrapper = _unwrapped,
        /,
    ) -> Awaitable[Perform]: ...


async def serve_worker(
    stop: asyncio.Event,
    agent: AgentName,
    task_type: type[TaskCommand],
    make_perform: PerformFactory,
    settings: Settings | None = None,
) -> None:
    """Run one worker agent until ``stop`` is set."""
    settings = settings or load_settings()
    tracing = Tracing.configure(agent, settings)
    metrics = ServiceMetrics.from_settings()
    bus = tracing.bus(
        metrics.bus(kafka_bus(settings, service=agent, topics=[task_topic(agent), RESULTS]))
    )
    # Only the supervisor's signed tasks are worked on: a forged task would spend model budget.
    authenticator = authenticator_for(settings)
    try:
        async with contextlib.AsyncExitStack() as resources:
            # Registered before connecting: `stack down` must find a worker stuck reconnecting.
            endpoint = await resources.enter_async_context(metrics.endpoint)
            registration = await resources.enter_async_context(
                registered(settings, agent, getattr(bus, "health", None), metrics=endpoint.url)
            )
            agent_perform = await make_perform(
                settings, resources, functools.partial(metrics.model, agent)
            )
            perform = tracing.perform(agent, metrics.perform(agent, agent_perform))
            await resources.enter_async_context(bus)
            worker = TaskWorker(agent, task_type, perform, bus, SystemClock())
            await bus.subscribe(replace(worker.subscription(), authenticator=authenticator))
            # The kill-switch's reach into running work: stop events are the supervisor's, signed.
            await bus.subscribe(replace(worker.watch_subscription(), authenticator=authenticator))
            _log.info("%s ready", agent)
            registration.ready()
            await stop.wait()
            _log.info("%s stopping after %d tasks", agent, worker.completed)
    finally:
        tracing.shutdown()


def model_agent(
    task_type: type[_Task], act: Callable[[_Task, LanguageModel], Awaitable[TaskResult]]
) -> PerformFactory:
    """A PerformFactory for an agent that works through the configured model port.

    Each task runs on the model its command's ``profile`` names: the primary, or the fallback
    a failing task was moved to (none configured: the task fails, not retried). Both are
    metered, so every result and failure reports its tokens and cost.
    """

    async def make_perform(
        settings: Settings,
        resources: contextlib.AsyncExitStack,
        wrap_model: ModelWrapper = _unwrapped,
        /,
    ) -> Perform:
        traced = Tracing.for_settings(settings).model

        def wired(model: LanguageModel) -> LanguageModel:
            # Priced first, so the metrics count the cost; the span sees the whole call.
            return traced(wrap_model(MeteredModel(model, settings.llm_prices)))

        primary = wired(build_model(settings))
        resources.push_async_callback(primary.aclose)
        built = build_fallback_model(settings)
        fallback = wired(built) if built is not None else None
        if fallback is not None:
            resources.push_async_callback(fallback.aclose)
        models: dict[str, LanguageModel | None] = {"primary": primary, "fallback": fallback}

        async def perform(task: TaskCommand) -> TaskResult:
            if not isinstance(task, task_type):
                raise TypeError(f"expected {task_type.TYPE}, got {task.TYPE}")
            return await act(task, _model_for(task.profile, models))

        return perform

    return make_perform


def _model_for(profile: str, models: dict[str, LanguageModel | None]) -> LanguageModel:
    model = models.get(profile)
    if model is not None:
        return model
    if profile in models:
        raise ModelError(
            f"the task asks for the {profile} model, but none is configured "
            "(set AGENTLOG_LLM_FALLBACK_PROVIDER and/or AGENTLOG_LLM_FALLBACK_MODEL)",
            retryable=False,
        )
    raise ModelError(
        f"unknown model profile {profile!r}: expected one of {', '.join(models)}", retryable=False
    )


def worker_entrypoint(
    agent: AgentName, task_type: type[TaskCommand], make_perform: PerformFactory
) -> Callable[[], None]:
    """The ``main()`` of a worker service: logging, signals, then ``serve_worker``."""

    def main() -> None:
        configure_logging(agent)
        exit_on_misconfiguration(
            lambda: run_until_signalled(
                lambda stop: serve_worker(stop, agent, task_type, make_perform)
            ),
            agent,
        )()

    return main
