"""The supervisor's composition root: wire adapters, consume, relay, watch deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid

from schemas.controls import Budget
from schemas.events import WorkflowPolicy
from schemas.topics import APPROVALS, CONTROL, GOALS, RESULTS, TOPICS
from services.supervisor.handler import FLEET_STREAM, Supervisor
from services.supervisor.leadership import PostgresAdvisoryLease
from services.supervisor.relay import OutboxRelay
from shared.domain import TERMINAL_EVENTS
from shared.eventstore.notifications import AppendNotifications
from shared.eventstore.postgres import PostgresEventStore
from shared.llm.prompts import current_prompt_versions
from shared.runtime.clock import SystemClock
from shared.runtime.lifecycle import configure_logging, run_until_signalled
from shared.runtime.registry import registered
from shared.runtime.wiring import authenticator_for, exit_on_misconfiguration, kafka_bus
from shared.settings import Settings, load_settings
from shared.telemetry.metrics_wiring import ServiceMetrics
from shared.telemetry.tracing import Tracing
from shared.transport import Subscription
from shared.transport.broker_watch import BrokerReset
from shared.transport.kafka import KafkaBus

__all__ = ["main", "policy_from", "serve"]

_log = logging.getLogger(__name__)

# How many recently updated streams a restarted supervisor scans for unfinished workflows to
# keep watching their deadlines (the scan reads only the streams table; 100k rows is quick).
_ACTIVE_SCAN_LIMIT = 100_000


def policy_from(settings: Settings) -> WorkflowPolicy:
    """The operator's defaults for new workflows."""
    return WorkflowPolicy.model_validate(
        {
            "max_revisions": settings.max_revisions,
            "max_attempts": settings.max_attempts,
            "task_timeout_s": settings.task_timeout_s,
            "memory_limit_chars": settings.memory_limit_chars,
            "manifest_budget_chars": settings.manifest_budget_chars,
            "budget": {
                "max_steps": settings.budget_max_steps,
                "max_tokens": settings.budget_max_tokens,
                "max_usd": settings.budget_max_usd,
                "max_seconds": settings.budget_max_seconds,
            },
            "approval_steps": settings.approval_steps,
            "approval_timeout_s": settings.approval_timeout_s,
            # A fallback model serves every agent that works through the model port.
            "fallbacks": (
                ["writer", "critic", "summarizer"]
                if settings.llm_fallback_model or settings.llm_fallback_provider
                else []
            ),
            "prompts": current_prompt_versions(),
        },
        strict=False,
    )


def ceiling_from(settings: Settings) -> Budget:
    """The most budget a goal may ask for."""
    return Budget(
        max_steps=settings.budget_ceiling_steps,
        max_tokens=settings.budget_ceiling_tokens,
        max_usd=settings.budget_ceiling_usd,
        max_seconds=settings.budget_ceiling_seconds,
    )


async def _watch_deadlines(
    supervisor: Supervisor, stop: asyncio.Event, every_s: float, kafka: KafkaBus
) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
        if not kafka.broker_available:
            # A task cannot be delivered or answered while the broker is away: letting its
            # deadline pass would spend its attempts on the outage, not on the agent.
            continue
        try:
            await supervisor.tick()
        except Exception:  # a failed tick must not stop the supervisor; the next one retries
            _log.exception("deadline tick failed")


async def _request_redrive(relay: OutboxRelay, reset: BrokerReset) -> None:
    relay.request_redrive(reset.intact_since)


async def serve(stop: asyncio.Event, settings: Settings | None = None) -> None:
    """Run the supervisor until ``stop`` is set."""
    settings = settings or load_settings()
    tracing = Tracing.configure("supervisor", settings)
    metrics = ServiceMetrics.from_settings()
    # A name of this process's own: the append notifications it sends are skipped by its own
    # listener (its relay is woken in process already).
    session_name = f"agentlog-supervisor-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    postgres = PostgresEventStore(settings.require_database_url(), application_name=session_name)
    store = tracing.store(metrics.store(postgres))
    kafka = kafka_bus(settings, service="supervisor", topics=[t.name for t in TOPICS])
    bus = tracing.bus(metrics.bus(kafka))
    authenticator = authenticator_for(settings)
    lease = PostgresAdvisoryLease(settings.require_database_url())
    try:
        # Registered before connecting: `stack down` must find a service stuck reconnecting too.
        health = getattr(bus, "health", None)
        async with (
            metrics.endpoint,
            registered(
                settings, "supervisor", health, metrics=metrics.endpoint.url
            ) as registration,
            store,
            bus,
            lease,
        ):
            supervisor = Supervisor(
                store,
                SystemClock(),
                policy_from(settings),
                ceiling=ceiling_from(settings),
                decision_scope=tracing.decisions(store),
            )
            await supervisor.load()
            for stream in await store.list_streams(limit=_ACTIVE_SCAN_LIMIT):
                if stream.last_type not in TERMINAL_EVENTS and stream.stream_id != FLEET_STREAM:
                    supervisor.watch(stream.stream_id)
            relay = OutboxRelay(
                store,
                bus,
                supervisor.committed,
                lease=lease,
                trace_scope=tracing.relay(),
                active=lambda: list(supervisor.active),
            )
            # A broker that forgot its topics lost records nobody had read: re-drive them.
            kafka.add_reset_listener(lambda reset: _request_redrive(relay, reset))
            await bus.subscribe(
                Subscription(
                    [GOALS, RESULTS, CONTROL],
                    "agentlog.supervisor",
                    supervisor.handle,
                    "supervisor",
                    authenticator=authenticator,
                )
            )
            # Decisions get their own group, so a queue of goals never delays an approval; a
            # refused decision is also recorded in the workflow it aimed at.
            await bus.subscribe(
                Subscription(
                    [APPROVALS],
                    "agentlog.supervisor.approvals",
                    supervisor.handle,
                    "supervisor",
                    authenticator=authenticator,
                    on_refused=supervisor.on_refused,
                    # A person's decision waits minutes already; 100 ms more saves polling.
                    fetch_wait_ms=100,
                )
            )
            _log.info("supervisor ready (%d active workflows)", len(supervisor.active))
            registration.ready()
            # Another supervisor's (or a CLI's) appends wake the relay at once, not at its next
            # poll; its own wake it in process already.
            notifications = AppendNotifications(
                settings.require_database_url(),
                lambda position: _wake_relay(relay, supervisor.committed, position),
                ignore=session_name,
            )
            async with asyncio.TaskGroup() as group:
                group.create_task(relay.run(stop))
                group.create_task(notifications.run(stop))
                group.create_task(_watch_deadlines(supervisor, stop, 1.0, kafka))
    finally:
        tracing.shutdown()


def _wake_relay(relay: OutboxRelay, wakeup: asyncio.Event, position: int | None) -> None:
    """Wake the relay for events it has not published yet (``None``: maybe some)."""
    if position is None or position > relay.position:
        wakeup.set()


def main() -> None:
    """``python -m services.supervisor``."""
    configure_logging("supervisor")
    exit_on_misconfiguration(lambda: run_until_signalled(serve), "supervisor")()
