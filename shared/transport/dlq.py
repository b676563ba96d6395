"""Dead-lettering: which records go to ``<topic>.dlq``, and with which headers.

A record is dead-lettered when it cannot be decoded (``malformed``), fails its model's
validation (``invalid``), names no known message type (``unknown-type``), or when the handler
raised on every one of ``RetryPolicy.tries`` attempts (``handler-error``). The dead letter keeps
the original key, value and headers and adds ``dlq_*`` headers saying why and where from; the
consumer then commits and moves on, so one bad record never blocks its partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from schemas.topics import dlq_topic
from shared.transport.envelope import RawRecord

__all__ = [
    "DLQ_ERROR_MAX_CHARS",
    "DeadLetter",
    "DeadLetterReason",
    "RetryPolicy",
    "dead_letter_for",
]

#: Long validation errors are cut so a dead letter stays a small record.
DLQ_ERROR_MAX_CHARS = 1000


class DeadLetterReason(StrEnum):
    """The ``dlq_reason`` header's values."""

    MALFORMED = "malformed"
    INVALID = "invalid"
    UNKNOWN_TYPE = "unknown-type"
    HANDLER_ERROR = "handler-error"


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing handler is retried on the same record before it is dead-lettered.

    Attempt ``n`` (1-based) that fails waits ``backoff_s * multiplier ** (n - 1)`` seconds,
    capped at ``max_backoff_s``, before attempt ``n + 1``.
    """

    tries: int = 3
    backoff_s: float = 0.2
    multiplier: float = 2.0
    max_backoff_s: float = 5.0

    def __post_init__(self) -> None:
        if self.tries < 1:
            raise ValueError("RetryPolicy.tries must be at least 1")

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        return float(min(self.max_backoff_s, self.backoff_s * self.multiplier ** (attempt - 1)))


@dataclass(frozen=True)
class DeadLetter:
    """The record to write to the dead-letter topic."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    reason: DeadLetterReason
    origin: RawRecord


def dead_letter_for(
    record: RawRecord,
    reason: DeadLetterReason,
    error: str,
    *,
    service: str,
    now: datetime | None = None,
) -> DeadLetter:
    """The dead letter for ``record``: original key/value/headers plus the ``dlq_*`` headers."""
    when = (now or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    # A record dead-lettered twice (e.g. replayed from a DLQ) keeps only the newest reasons.
    original = [(name, value) for name, value in record.headers if not name.startswith("dlq_")]
    extra = [
        ("dlq_reason", reason.value.encode()),
        ("dlq_error", error[:DLQ_ERROR_MAX_CHARS].encode("utf-8", errors="replace")),
        ("dlq_origin_topic", record.topic.encode()),
        ("dlq_origin_partition", str(record.partition).encode()),
        ("dlq_origin_offset", str(record.offset).encode()),
        ("dlq_service", service.encode()),
        ("dlq_time", when.encode()),
    ]
    return DeadLetter(
        topic=dlq_topic(record.topic),
        key=record.key,
        value=record.value,
        headers=original + extra,
        reason=reason,
        origin=record,
    )
