"""The in-memory event store: the shared contract, plus its injectable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from shared.eventstore import EventStore, InMemoryEventStore, NewEvent
from shared.telemetry.metrics import Metrics
from shared.telemetry.metrics_store import MetricsEventStore
from shared.telemetry.tracing_store import TracingEventStore
from tests.contracts.eventstore import EventStoreContract, StoreFactory


class TestInMemoryEventStore(EventStoreContract):
    """Runs the event store contract on InMemoryEventStore."""

    @pytest.fixture
    async def make_store(self) -> AsyncIterator[StoreFactory]:
        """One shared instance: every "store" the factory makes sees the same data."""
        shared = InMemoryEventStore()

        async def factory() -> EventStore:
            await shared.start()
            return shared

        yield factory
        await shared.stop()


class TestInterceptedEventStore(EventStoreContract):
    """Runs the contract on the interceptors a composition root stacks (metrics inside
    tracing) over the in-memory store: wrapping changes no answer of the port."""

    @pytest.fixture
    async def make_store(self) -> AsyncIterator[StoreFactory]:
        """The wrapped shared instance, as the supervisor wires it."""
        shared = InMemoryEventStore()
        wrapped = TracingEventStore(MetricsEventStore(shared, Metrics(CollectorRegistry())))

        async def factory() -> EventStore:
            await wrapped.start()
            return wrapped

        yield factory
        await wrapped.stop()


class _Clock:
    """A clock that advances one second per reading."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


async def test_recorded_at_comes_from_the_injected_clock() -> None:
    """recorded_at, created_at and updated_at come from the clock, one reading per append."""
    store = InMemoryEventStore(clock=_Clock())
    first = await store.append("wf-1", [NewEvent("A", {}), NewEvent("B", {})], 0)
    [second] = await store.append("wf-1", [NewEvent("C", {})], 2)
    t1, t2 = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC)
    assert [e.recorded_at for e in [*first, second]] == [t1, t1, t2]
    [summary] = await store.list_streams()
    assert (summary.created_at, summary.updated_at) == (t1, t2)
