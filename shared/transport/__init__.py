"""Kafka transport: CloudEvents envelope, at-least-once consumers, dead-lettering."""

from shared.transport.port import Bus, Delivery, Handler, Subscription

__all__ = ["Bus", "Delivery", "Handler", "Subscription"]
