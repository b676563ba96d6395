"""What a composition root calls: one ``Tracing`` per process, wrapping each port it wires.

Tracing is off unless ``AGENTLOG_OTEL_EXPORTER`` names an exporter; while it is off every wrap
returns the adapter unchanged, so a service that does not trace pays for no interceptor.

    tracing = Tracing.configure("supervisor", settings)
    store = tracing.store(PostgresEventStore(...))
    bus = tracing.bus(kafka_bus(...))
    ...
    tracing.shutdown()  # flushes what is left, as the process exits
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass

from schemas.messages import AgentName
from shared.domain import Trigger
from shared.eventstore import EventStore, RecordedEvent
from shared.llm.port import LanguageModel
from shared.runtime.worker import Perform
from shared.settings import Settings
from shared.telemetry.setup import configure_tracing, shutdown_tracing, tracing_enabled
from shared.telemetry.tracing_bus import TracingBus
from shared.telemetry.tracing_flow import DecisionSpans, relay_span, traced_perform
from shared.telemetry.tracing_model import TracingModel
from shared.telemetry.tracing_store import TracingEventStore
from shared.transport.port import Bus

__all__ = ["DecisionScope", "RelayScope", "Tracing"]

#: Runs around one supervisor decision (deciding and appending).
DecisionScope = Callable[[str, Trigger], AbstractAsyncContextManager[None]]
#: Runs around the relay's publishing of one recorded event.
RelayScope = Callable[[RecordedEvent], AbstractContextManager[None]]


@dataclass(frozen=True)
class Tracing:
    """Which interceptors this process wires; ``enabled`` False wires none."""

    enabled: bool

    @classmethod
    def configure(cls, service: str, settings: Settings) -> Tracing:
        """Install the tracer provider for ``service`` (once per process) and say what to wrap."""
        configure_tracing(
            f"agentlog-{service}", settings.otel_exporter, state_dir=settings.state_dir
        )
        return cls.for_settings(settings)

    @classmethod
    def for_settings(cls, settings: Settings) -> Tracing:
        """The wrapping ``settings`` ask for, without touching the tracer provider."""
        return cls(enabled=tracing_enabled(settings.otel_exporter))

    def store(self, store: EventStore) -> EventStore:
        """``store`` with a span per append and read."""
        return TracingEventStore(store) if self.enabled else store

    def bus(self, bus: Bus) -> Bus:
        """``bus`` with each message handled and sent in its workflow's scope."""
        return TracingBus(bus) if self.enabled else bus

    def model(self, model: LanguageModel) -> LanguageModel:
        """``model`` with a GenAI span per call."""
        return TracingModel(model) if self.enabled else model

    def perform(self, agent: AgentName, perform: Perform) -> Perform:
        """A worker's ``perform`` inside an agent-step span."""
        return traced_perform(agent, perform) if self.enabled else perform

    def decisions(self, store: EventStore) -> DecisionScope:
        """The span around each supervisor decision; ``store`` is the one ``store()`` wrapped."""
        if self.enabled and isinstance(store, TracingEventStore):
            return DecisionSpans(store)
        return _no_decision_scope

    def relay(self) -> RelayScope | None:
        """The span around each relayed event (None: the relay's own context restore)."""
        return relay_span if self.enabled else None

    def shutdown(self) -> None:
        """Flush pending spans; call once, as the process exits."""
        shutdown_tracing()


@contextlib.asynccontextmanager
async def _no_decision_scope(workflow_id: str, trigger: Trigger) -> AsyncIterator[None]:
    yield
