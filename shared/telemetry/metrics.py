"""The Prometheus metric families of one service process, on a registry of its own.

Nothing here touches ``prometheus_client``'s default global registry: a composition root
builds one ``Metrics`` (a fresh ``CollectorRegistry``), hands it to the interceptors it wraps
around its ports (``metrics_store``, ``metrics_bus``, ``metrics_model``), and serves the
registry (``metrics_server``). Each group of families is registered the first time an
interceptor asks for it, so a service exposes only what it wires: workers have no workflow
counters, the supervisor no step latencies.

Names follow Prometheus conventions: an ``agentlog_`` prefix, the unit in the name, ``_total``
on counters (``prometheus_client`` adds it) and ``_seconds`` histograms.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "LATENCY_BUCKETS_S",
    "ConsumerLag",
    "Metrics",
    "ModelMetrics",
    "StepMetrics",
    "StoreMetrics",
    "TransportMetrics",
]

_log = logging.getLogger(__name__)

#: From a millisecond (an in-memory handoff) to five minutes (a slow model call).
LATENCY_BUCKETS_S = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)

#: Records a consumer group has yet to handle, by (group, topic, partition).
ConsumerLag = Mapping[tuple[str, str, int], int]


@dataclass
class StoreMetrics:
    """What the event store interceptor counts: workflow transitions and the relay's lag."""

    started: Counter
    completed: Counter
    failed: Counter
    cancelled: Counter
    pending_approval: Counter
    #: The highest global position this process has appended or read.
    head_position: int = 0
    #: Each follower's checkpoint as last loaded or saved here (the relay's is its position).
    checkpoints: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TransportMetrics:
    """What the bus interceptor observes: queue waits, dead letters; consumer lag at scrape."""

    queue_wait: Histogram
    dead_letters: Counter
    lag_sources: list[Callable[[], ConsumerLag]]


@dataclass(frozen=True)
class StepMetrics:
    """How long a worker's steps take."""

    duration: Histogram


@dataclass(frozen=True)
class ModelMetrics:
    """What model calls used and cost."""

    tokens: Counter
    cost_usd: Counter


class Metrics:
    """One process's metric families; each group is registered on first use."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()

    @cached_property
    def store(self) -> StoreMetrics:
        """Workflow counters (from appended events) and the relay lag gauge."""
        group = StoreMetrics(
            started=self._counter(
                "agentlog_workflows_started", "Workflows started (WorkflowStarted, WorkflowForked)"
            ),
            completed=self._counter("agentlog_workflows_completed", "Workflows completed"),
            failed=self._counter("agentlog_workflows_failed", "Workflows failed"),
            cancelled=self._counter("agentlog_workflows_cancelled", "Workflows cancelled"),
            pending_approval=self._counter(
                "agentlog_workflows_pending_approval",
                "Times a workflow began waiting for a human (ApprovalRequested), by its kind",
                ["kind"],
            ),
        )
        self.registry.register(_RelayLagCollector(group))
        return group

    @cached_property
    def transport(self) -> TransportMetrics:
        """Queue wait, dead letters and consumer lag."""
        group = TransportMetrics(
            queue_wait=Histogram(
                "agentlog_queue_wait_seconds",
                "Time from a message's publication to the start of its handling",
                ["agent", "topic"],
                buckets=LATENCY_BUCKETS_S,
                registry=self.registry,
            ),
            dead_letters=self._counter(
                "agentlog_dead_letters",
                "Records dead-lettered, by the topic they came from and the dlq_reason",
                ["topic", "reason"],
            ),
            lag_sources=[],
        )
        self.registry.register(_ConsumerLagCollector(group.lag_sources))
        return group

    @cached_property
    def steps(self) -> StepMetrics:
        """The step latency histogram."""
        return StepMetrics(
            duration=Histogram(
                "agentlog_step_duration_seconds",
                "Time a worker agent took to perform one task attempt",
                ["agent", "outcome"],
                buckets=LATENCY_BUCKETS_S,
                registry=self.registry,
            )
        )

    @cached_property
    def models(self) -> ModelMetrics:
        """Token and cost counters."""
        return ModelMetrics(
            tokens=self._counter(
                "agentlog_model_tokens",
                "Tokens model calls used (failed calls included), by direction",
                ["agent", "model", "direction"],
            ),
            cost_usd=self._counter(
                "agentlog_model_cost_usd",
                "What model calls cost at the operator's prices (failed calls included)",
                ["agent", "model"],
            ),
        )

    def watch_consumer_lag(self, source: Callable[[], ConsumerLag]) -> None:
        """Sample ``source`` (say, ``KafkaBus.consumer_lag``) at every scrape."""
        self.transport.lag_sources.append(source)

    def _counter(
        self, name: str, documentation: str, labels: tuple[str, ...] | list[str] = ()
    ) -> Counter:
        return Counter(name, documentation, list(labels), registry=self.registry)


class _ConsumerLagCollector(Collector):
    """``agentlog_consumer_lag_records``, read from the consumers when scraped."""

    def __init__(self, sources: list[Callable[[], ConsumerLag]]) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "agentlog_consumer_lag_records",
            "Records a consumer group has yet to handle (highwater minus next offset)",
            labels=["group", "topic", "partition"],
        )
        for source in self._sources:
            try:
                lag = dict(source())
            except Exception:  # a scrape must never fail because one source did
                _log.exception("consumer lag probe failed")
                continue
            for (group, topic, partition), records in sorted(lag.items()):
                family.add_metric([group, topic, str(partition)], float(records))
        yield family


class _RelayLagCollector(Collector):
    """``agentlog_relay_lag_positions``: the store's head minus each follower's checkpoint."""

    def __init__(self, store: StoreMetrics) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "agentlog_relay_lag_positions",
            "Global positions a follower (the outbox relay) is behind the newest event seen",
            labels=["checkpoint"],
        )
        head = self._store.head_position
        for name, position in sorted(self._store.checkpoints.items()):
            family.add_metric([name], float(max(0, head - position)))
        yield family
