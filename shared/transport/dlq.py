"""Dead-lettering: which records go to ``<topic>.dlq``, and with which headers.

A record is dead-lettered when it cannot be decoded (``malformed``), fails its model's
validation (``invalid``), names no known message type (``unknown-type``), or when the handler
raised on every one of ``RetryPolicy.tries`` attempts (``handler-error``); when it exceeds
``max_record_bytes`` (``oversized``); when its key is not its workflow (``key-mismatch``); when
its signature is missing, wrong or stale (``unauthenticated``) or its signer may not send it
(``unauthorized``); and when the handler refuses it (``conflict``, ``unknown-workflow``,
``invalid``). The dead letter keeps the original key and headers and, unless it is too large,
the value, and adds ``dlq_*`` headers saying why and where from; the consumer then commits and
moves on, so one bad record never blocks its partition.

A value too large to park as it is (over ``max_record_bytes``, or refused by the broker) is cut
to its first ``TRUNCATED_VALUE_BYTES`` bytes; ``dlq_original_size`` and
``dlq_original_sha256`` identify the original.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from schemas.topics import dlq_topic
from shared.runtime.redaction import redact
from shared.transport.envelope import RawRecord

__all__ = [
    "DLQ_ERROR_MAX_CHARS",
    "TRUNCATED_VALUE_BYTES",
    "DeadLetter",
    "DeadLetterReason",
    "RetryPolicy",
    "dead_letter_for",
    "truncated",
]

#: Long validation errors are cut so a dead letter stays a small record.
DLQ_ERROR_MAX_CHARS = 1000
#: How much of an oversized value a dead letter keeps (enough to recognise it).
TRUNCATED_VALUE_BYTES = 1024


class DeadLetterReason(StrEnum):
    """The ``dlq_reason`` header's values."""

    MALFORMED = "malformed"
    INVALID = "invalid"
    UNKNOWN_TYPE = "unknown-type"
    HANDLER_ERROR = "handler-error"
    OVERSIZED = "oversized"
    KEY_MISMATCH = "key-mismatch"
    UNAUTHENTICATED = "unauthenticated"
    UNAUTHORIZED = "unauthorized"
    CONFLICT = "conflict"
    UNKNOWN_WORKFLOW = "unknown-workflow"


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
    max_record_bytes: int | None = None,
) -> DeadLetter:
    """The dead letter for ``record``: original key/value/headers plus the ``dlq_*`` headers.

    The value is cut when the record exceeds ``max_record_bytes``.
    """
    when = (now or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    # A record dead-lettered twice (e.g. replayed from a DLQ) keeps only the newest reasons.
    original = [(name, value) for name, value in record.headers if not name.startswith("dlq_")]
    extra = [
        ("dlq_reason", reason.value.encode()),
        ("dlq_error", redact(error)[:DLQ_ERROR_MAX_CHARS].encode("utf-8", errors="replace")),
        ("dlq_origin_topic", record.topic.encode()),
        ("dlq_origin_partition", str(record.partition).encode()),
        ("dlq_origin_offset", str(record.offset).encode()),
        ("dlq_service", service.encode()),
        ("dlq_time", when.encode()),
    ]
    letter = DeadLetter(
        topic=dlq_topic(record.topic),
        key=record.key,
        value=record.value,
        headers=original + extra,
        reason=reason,
        origin=record,
    )
    if max_record_bytes is not None and record.size > max_record_bytes:
        return truncated(letter)
    return letter


def truncated(letter: DeadLetter) -> DeadLetter:
    """The same dead letter with its value cut, and the original's size and digest in headers."""
    value = letter.origin.value or b""
    if any(name == "dlq_original_size" for name, _ in letter.headers):
        return letter
    # Keep only small headers: an attacker can make headers as large as the value.
    headers = [(n, v[:TRUNCATED_VALUE_BYTES]) for n, v in letter.headers][:64]
    headers += [
        ("dlq_original_size", str(letter.origin.size).encode()),
        ("dlq_original_sha256", hashlib.sha256(value).hexdigest().encode()),
    ]
    key = letter.key[:TRUNCATED_VALUE_BYTES] if letter.key else letter.key
    return replace(letter, key=key, value=value[:TRUNCATED_VALUE_BYTES], headers=headers)
