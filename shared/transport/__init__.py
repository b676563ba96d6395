"""Kafka transport: CloudEvents envelope, at-least-once consumers, dead-lettering."""

from shared.transport.dlq import DeadLetterReason, RetryPolicy
from shared.transport.envelope import RawRecord
from shared.transport.kafka import KafkaBus
from shared.transport.memory import InMemoryBroker, InMemoryBus
from shared.transport.port import (
    Bus,
    Delivery,
    Handler,
    RecordTooLargeError,
    RejectedError,
    Subscription,
    TransientError,
)

__all__ = [
    "Bus",
    "DeadLetterReason",
    "Delivery",
    "Handler",
    "InMemoryBroker",
    "InMemoryBus",
    "KafkaBus",
    "RawRecord",
    "RecordTooLargeError",
    "RejectedError",
    "RetryPolicy",
    "Subscription",
    "TransientError",
]
