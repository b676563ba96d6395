"""What every adapter does with one record, so the Kafka bus and its in-memory twin agree.

Publishing: a PRODUCER span, the CloudEvents envelope, the trace context in its headers.
Consuming: a CONSUMER span, decode, the handler with retries, dead-lettering on failure. The
adapter only moves bytes and commits when ``process_record`` says the record is done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from opentelemetry.trace import Status, StatusCode

from schemas.base import Message
from shared.auth import SIGNATURE_HEADER, AuthenticationError, AuthorizationError, Signer
from shared.runtime.log_context import workflow_context
from shared.transport.dlq import DeadLetter, DeadLetterReason, RetryPolicy, dead_letter_for
from shared.transport.envelope import Envelope, EnvelopeError, RawRecord, decode_envelope
from shared.transport.envelope import encode_envelope as _encode
from shared.transport.port import (
    Delivery,
    RecordTooLargeError,
    RejectedError,
    Subscription,
    TransientError,
)
from shared.transport.tracing import inject_context, process_span, publish_span

__all__ = ["DeadLetterSink", "Publisher", "process_record", "stopped_within", "traced_publish"]

log = logging.getLogger("agentlog.transport")

#: Writes a dead letter; True once it is durably on the DLQ, False if the bus stopped first.
DeadLetterSink = Callable[[DeadLetter], Awaitable[bool]]
#: Writes one record (topic, envelope) and returns once the broker acknowledged it.
Publisher = Callable[[str, Envelope], Awaitable[None]]


async def traced_publish(
    send: Publisher,
    topic: str,
    message: Message,
    *,
    key: str,
    source: str,
    ce_id: str | None,
    subject: str | None,
    headers: Mapping[str, bytes] | None,
    signer: Signer | None = None,
    max_record_bytes: int | None = None,
) -> None:
    """Encode and sign ``message`` and hand it to ``send`` inside a PRODUCER span.

    Raises ``RecordTooLargeError`` (nothing is sent) when the record exceeds
    ``max_record_bytes``: better one clear error here than a broker refusal, or a consumer
    that has to dead-letter it.
    """
    with publish_span(topic, key=key, ce_type=message.TYPE) as span:
        envelope = _encode(
            message, key=key, source=source, ce_id=ce_id, subject=subject, headers=headers
        )
        span.set_attribute("messaging.message.id", envelope.ce_id)
        if signer is not None:
            signature = signer.header(dict(envelope.headers), envelope.key, envelope.value)
            envelope.headers.append((SIGNATURE_HEADER, signature))
        inject_context(envelope.headers)
        if max_record_bytes is not None:
            size = RawRecord(
                topic, 0, 0, envelope.key, envelope.value, tuple(envelope.headers)
            ).size
            if size > max_record_bytes:
                raise RecordTooLargeError(
                    f"{message.TYPE} for {key} is {size} bytes, over the {max_record_bytes}-byte "
                    "record limit (max_record_bytes); it was not sent"
                )
        await send(topic, envelope)


async def process_record(
    record: RawRecord,
    subscription: Subscription,
    *,
    retry: RetryPolicy,
    dead_letter: DeadLetterSink,
    stopping: asyncio.Event,
    max_record_bytes: int | None = None,
    on_wait: Callable[[str | None], None] | None = None,
) -> bool:
    """Handle one record; True when it is done (handled or dead-lettered) and may be committed.

    False means the bus began stopping during the handler's retries: the record stays
    uncommitted and is redelivered to whichever member of the group consumes next.
    ``on_wait`` hears why the partition is waiting (a dependency down), then ``None`` when it
    moves again, so a stuck partition is visible in the service's health.
    """
    if subscription.wants is not None and not subscription.wants(record):
        return True  # not this consumer's business: skip it without decoding or verifying
    # Everything logged about this record, by the handler or here, names its workflow (the key).
    with workflow_context(record.key), process_span(record, group=subscription.group) as span:
        refused = _refusal(record, subscription, max_record_bytes)
        if isinstance(refused, _Refusal):
            span.set_status(Status(StatusCode.ERROR, refused.reason.value))
            letter = dead_letter_for(
                record,
                refused.reason,
                refused.detail,
                service=subscription.service,
                max_record_bytes=max_record_bytes,
            )
            written = await _send_dead_letter(dead_letter, letter, refused.detail, subscription)
            if written and subscription.on_refused is not None:
                await _tell_refused(subscription, record, refused)
            return written
        delivery = refused
        span.set_attribute("messaging.message.id", delivery.ce_id)
        span.set_attribute("cloudevents.event_type", delivery.ce_type)
        error: Exception | None = None
        attempt = waits = 0
        try:
            while attempt < retry.tries:
                try:
                    await subscription.handler(delivery)
                except RejectedError as exc:
                    span.set_status(Status(StatusCode.ERROR, exc.reason))
                    letter = dead_letter_for(
                        record,
                        DeadLetterReason(exc.reason),
                        exc.detail,
                        service=subscription.service,
                        max_record_bytes=max_record_bytes,
                    )
                    return await _send_dead_letter(dead_letter, letter, exc.detail, subscription)
                except TransientError as exc:
                    # A dependency is down, the record is fine: wait and retry it, never
                    # dead-letter it (a goal or a cancel must not be lost to a database blip).
                    waits += 1
                    span.record_exception(exc)
                    if on_wait is not None:
                        on_wait(f"waiting for a dependency: {exc}")
                    log.warning(
                        "handler paused on %s[%d]@%d (retry %d): %r",
                        record.topic,
                        record.partition,
                        record.offset,
                        waits,
                        exc,
                        extra=_fields(record, subscription, attempt=attempt),
                    )
                    if await stopped_within(stopping, retry.delay_after(waits)):
                        return False
                    continue
                except Exception as exc:
                    attempt += 1
                    error = exc
                    span.record_exception(exc)
                    log.warning(
                        "handler failed (attempt %d of %d) on %s[%d]@%d: %r",
                        attempt,
                        retry.tries,
                        record.topic,
                        record.partition,
                        record.offset,
                        exc,
                        extra=_fields(record, subscription, attempt=attempt),
                    )
                    if attempt < retry.tries and await stopped_within(
                        stopping, retry.delay_after(attempt)
                    ):
                        return False
                else:
                    return True
        finally:
            if waits and on_wait is not None:
                on_wait(None)
        detail = f"{type(error).__name__}: {error}"
        span.set_status(Status(StatusCode.ERROR, "handler-error"))
        letter = dead_letter_for(
            record,
            DeadLetterReason.HANDLER_ERROR,
            detail,
            service=subscription.service,
            max_record_bytes=max_record_bytes,
        )
        return await _send_dead_letter(dead_letter, letter, detail, subscription)


async def _tell_refused(subscription: Subscription, record: RawRecord, refused: _Refusal) -> None:
    assert subscription.on_refused is not None
    key = record.key.decode(errors="replace") if record.key is not None else None
    ce_id = dict(record.headers).get("ce_id")
    try:
        await subscription.on_refused(
            key, ce_id.decode(errors="replace") if ce_id else None, refused.reason.value
        )
    except Exception:  # the dead letter is the record of truth; this is a courtesy copy
        log.exception("recording a refused record failed")


@dataclass(frozen=True)
class _Refusal:
    reason: DeadLetterReason
    detail: str


def _refusal(
    record: RawRecord, subscription: Subscription, max_record_bytes: int | None
) -> Delivery | _Refusal:
    """The delivery, or why the record is refused before any handler sees it."""
    if max_record_bytes is not None and record.size > max_record_bytes:
        return _Refusal(
            DeadLetterReason.OVERSIZED,
            f"record is {record.size} bytes, over the {max_record_bytes}-byte limit",
        )
    try:
        delivery = decode_envelope(record)
    except EnvelopeError as exc:
        return _Refusal(DeadLetterReason(exc.reason), str(exc))
    if subscription.authenticator is None:
        return delivery
    record_time = (
        datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
        if record.timestamp_ms is not None
        else datetime.now(UTC)
    )
    try:
        principal = subscription.authenticator.authenticate(
            delivery.headers,
            record.key,
            record.value,
            ce_type=delivery.ce_type,
            message=delivery.message,
            record_time=record_time,
            signed_time=delivery.ce_time,
        )
    except AuthenticationError as exc:
        return _Refusal(DeadLetterReason.UNAUTHENTICATED, str(exc))
    except AuthorizationError as exc:
        return _Refusal(DeadLetterReason.UNAUTHORIZED, str(exc))
    return replace(delivery, principal=principal)


async def _send_dead_letter(
    sink: DeadLetterSink, letter: DeadLetter, detail: str, subscription: Subscription
) -> bool:
    record = letter.origin
    written = await sink(letter)
    if not written:
        log.info(
            "stopping before %s[%d]@%d was dead-lettered; it stays uncommitted",
            record.topic,
            record.partition,
            record.offset,
        )
        return False
    log.warning(
        "dead-lettered %s[%d]@%d to %s (%s): %s",
        record.topic,
        record.partition,
        record.offset,
        letter.topic,
        letter.reason.value,
        detail[:200],
        extra={
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "dlq_topic": letter.topic,
            "dlq_reason": letter.reason.value,
        },
    )
    if subscription.on_dead_letter is not None:
        try:
            subscription.on_dead_letter(record.topic, letter.reason.value)
        except Exception:  # an observer (metrics) must never hold up the partition
            log.exception("dead-letter observer failed")
    return True


async def stopped_within(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``; True as soon as ``stopping`` is set."""
    try:
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


def _fields(record: RawRecord, subscription: Subscription, **more: object) -> dict[str, object]:
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "group": subscription.group,
        "service": subscription.service,
        **more,
    }
