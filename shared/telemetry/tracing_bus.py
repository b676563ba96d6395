"""Tracing around the transport port: each message's handling and sending in its workflow.

The bus adapters already make the messaging spans (``shared.transport.tracing``: a PRODUCER
span per publish, a CONSUMER span per record, W3C context in the headers). This interceptor
adds what only agentlog knows: the record's key is its workflow, so the CONSUMER span is
tagged with it and every span the handler starts (decision, store, agent step, model call)
belongs to the workflow too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import replace

from opentelemetry import trace

from schemas.base import Message
from shared.telemetry.exporters import workflow_scope
from shared.telemetry.spans import WORKFLOW_ATTRIBUTE
from shared.transport.port import Bus, Delivery, Handler, Subscription

__all__ = ["TracingBus"]


class TracingBus(Bus):
    """``inner`` with every handler and publish inside its workflow's scope."""

    def __init__(self, inner: Bus) -> None:
        self.inner = inner

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

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
        with workflow_scope(key):
            await self.inner.publish(
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
        with workflow_scope(key):
            return await self.inner.publish_queued(
                topic, message, key=key, ce_id=ce_id, subject=subject, headers=headers
            )

    async def subscribe(self, subscription: Subscription) -> None:
        await self.inner.subscribe(
            replace(subscription, handler=_in_workflow(subscription.handler))
        )

    def health(self) -> dict[str, object]:
        return self.inner.health()


def _in_workflow(handler: Handler) -> Handler:
    async def handle(delivery: Delivery) -> None:
        # The CONSUMER span started before the record was decoded; tag it now.
        if delivery.key:
            trace.get_current_span().set_attribute(WORKFLOW_ATTRIBUTE, delivery.key)
        with workflow_scope(delivery.key):
            await handler(delivery)

    return handle
