"""``MetricsBus``: an interceptor around the transport port that times and counts deliveries.

Every subscription it passes on gets two observers: its handler is timed from the message's
publication (``ce_time``, stamped by the publisher) to the start of its handling, the queue
wait; and ``Subscription.on_dead_letter`` counts each record the adapter parks, by the topic it
came from and the ``dlq_reason``. Consumer lag is not seen here: it is read from the Kafka
consumers at scrape time (``Metrics.watch_consumer_lag``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC

from schemas.base import Message
from shared.telemetry.metrics import Metrics, TransportMetrics
from shared.transport.port import Bus, Delivery, Handler, Subscription

__all__ = ["MetricsBus"]


class MetricsBus(Bus):
    """Delegates to ``inner``; observes the queue wait and dead letters of what it consumes."""

    def __init__(
        self, inner: Bus, metrics: Metrics, *, now: Callable[[], float] = time.time
    ) -> None:
        """``now`` is the wall clock (seconds since the epoch) the publication time is read by."""
        self._inner = inner
        self._metrics: TransportMetrics = metrics.transport
        self._now = now

    def __repr__(self) -> str:
        return f"MetricsBus({self._inner!r})"

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()

    async def publish(
        self,
        topic: str,
        message: Message,
        *,
        key: str,
        ce_id: str | None = None,
        subject: str | None = None,
        headers: Mapping[str, bytes] | None = None,
    ) -> None:
        await self._inner.publish(
            topic, message, key=key, ce_id=ce_id, subject=subject, headers=headers
        )

    async def publish_queued(
        self,
        topic: str,
        message: Message,
        *,
        key: str,
        ce_id: str | None = None,
        subject: str | None = None,
        headers: Mapping[str, bytes] | None = None,
    ) -> Awaitable[object]:
        return await self._inner.publish_queued(
            topic, message, key=key, ce_id=ce_id, subject=subject, headers=headers
        )

    async def subscribe(self, subscription: Subscription) -> None:
        await self._inner.subscribe(
            replace(
                subscription,
                handler=self._timed(subscription.handler, subscription.service),
                on_dead_letter=self._counted(subscription.on_dead_letter),
            )
        )

    def health(self) -> dict[str, object]:
        return self._inner.health()

    def _timed(self, handler: Handler, agent: str) -> Handler:
        queue_wait = self._metrics.queue_wait

        async def timed(delivery: Delivery) -> None:
            if delivery.ce_time is not None:
                published = delivery.ce_time
                if published.tzinfo is None:
                    published = published.replace(tzinfo=UTC)
                # Clocks of two hosts may disagree by a little; a wait is never negative.
                waited = max(0.0, self._now() - published.timestamp())
                queue_wait.labels(agent, delivery.topic).observe(waited)
            await handler(delivery)

        return timed

    def _counted(self, inner: Callable[[str, str], None] | None) -> Callable[[str, str], None]:
        dead_letters = self._metrics.dead_letters

        def counted(topic: str, reason: str) -> None:
            dead_letters.labels(topic, reason).inc()
            if inner is not None:
                inner(topic, reason)

        return counted
