"""What a composition root calls: one ``ServiceMetrics`` per process, wrapping each port it wires.

    metrics = ServiceMetrics.from_settings()
    store = metrics.store(PostgresEventStore(...))
    bus = metrics.bus(kafka_bus(...))          # a KafkaBus also reports its consumers' lag
    async with metrics.endpoint, registered(..., metrics=metrics.endpoint.url):
        ...

Metrics wrap the adapters directly and tracing wraps the result, so a decision's span still
sees the tracing store it needs. The counters count whether or not the endpoint is served.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.eventstore.port import EventStore
from shared.llm.port import LanguageModel
from shared.runtime.worker import Perform
from shared.telemetry.metrics import Metrics
from shared.telemetry.metrics_bus import MetricsBus
from shared.telemetry.metrics_model import MetricsModel, timed_perform
from shared.telemetry.metrics_server import MetricsServer
from shared.telemetry.metrics_settings import MetricsSettings
from shared.telemetry.metrics_store import MetricsEventStore
from shared.transport.kafka import KafkaBus
from shared.transport.port import Bus

__all__ = ["ServiceMetrics"]


@dataclass(frozen=True)
class ServiceMetrics:
    """A process's metric families and the endpoint that serves them."""

    metrics: Metrics
    endpoint: MetricsServer

    @classmethod
    def from_settings(cls, settings: MetricsSettings | None = None) -> ServiceMetrics:
        """A fresh registry, served where ``AGENTLOG_METRICS_PORT``/``_HOST`` say."""
        metrics = Metrics()
        return cls(metrics, MetricsServer.from_settings(metrics.registry, settings))

    def store(self, store: EventStore) -> EventStore:
        """``store`` counting workflow transitions and the relay's lag."""
        return MetricsEventStore(store, self.metrics)

    def bus(self, bus: Bus) -> Bus:
        """``bus`` observing queue waits and dead letters; a KafkaBus's lag is read at scrape."""
        if isinstance(bus, KafkaBus):
            self.metrics.watch_consumer_lag(bus.consumer_lag)
        return MetricsBus(bus, self.metrics)

    def model(self, agent: str, model: LanguageModel) -> LanguageModel:
        """``model`` counting tokens and cost for ``agent``."""
        return MetricsModel(model, self.metrics, agent=agent)

    def perform(self, agent: str, perform: Perform) -> Perform:
        """``perform`` timed per task attempt."""
        return timed_perform(perform, self.metrics, agent=agent)
