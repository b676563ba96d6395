"""The CloudEvents binary-mode envelope, dead-letter headers and the retry policy."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from schemas.messages import GoalSubmitted
from shared.transport.dlq import DeadLetterReason, RetryPolicy, dead_letter_for
from shared.transport.envelope import (
    Envelope,
    InvalidMessageError,
    MalformedRecordError,
    RawRecord,
    UnknownTypeError,
    decode_envelope,
    encode_envelope,
)

GOAL = GoalSubmitted(workflow_id="wf-1", goal="write a report")
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _encoded(
    *,
    ce_id: str | None = None,
    subject: str | None = None,
    headers: dict[str, bytes] | None = None,
) -> Envelope:
    return encode_envelope(
        GOAL,
        key="wf-1",
        source="agentlog/test",
        ce_id=ce_id,
        subject=subject,
        time=WHEN,
        headers=headers,
    )


def _record(envelope: Envelope) -> RawRecord:
    return RawRecord("t", 2, 7, envelope.key, envelope.value, tuple(envelope.headers))


def _without(headers: tuple[tuple[str, bytes], ...], name: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((n, v) for n, v in headers if n != name)


def test_encode_writes_binary_mode_headers() -> None:
    """Binary mode: ce_ headers, content-type, RFC 3339 time, workflow id as key and subject."""
    envelope = _encoded(ce_id="id-1")
    headers = dict(envelope.headers)
    assert headers == {
        "ce_id": b"id-1",
        "ce_source": b"agentlog/test",
        "ce_type": b"agentlog.goal.submitted.v1",
        "ce_specversion": b"1.0",
        "ce_time": b"2026-01-02T03:04:05Z",
        "ce_subject": b"wf-1",
        "content-type": b"application/json",
    }
    assert envelope.key == b"wf-1"
    assert GoalSubmitted.model_validate_json(envelope.value) == GOAL


def test_encode_generates_a_fresh_id_when_none_is_given() -> None:
    """Without ce_id each envelope gets its own UUID."""
    assert _encoded().ce_id != _encoded().ce_id


def test_encode_refuses_to_override_envelope_headers() -> None:
    """Application headers may not shadow ce_ or content-type headers."""
    with pytest.raises(ValueError, match="reserved"):
        _encoded(headers={"ce_type": b"x"})


def test_decode_round_trips_message_and_attributes() -> None:
    """Decoding an encoded record gives back the message, attributes and raw headers."""
    envelope = _encoded(ce_id="id-1", subject="wf-1", headers={"x": b"\xff"})
    delivery = decode_envelope(_record(envelope))
    assert delivery.message == GOAL
    assert (delivery.topic, delivery.partition, delivery.offset) == ("t", 2, 7)
    assert (delivery.key, delivery.ce_id, delivery.ce_subject) == ("wf-1", "id-1", "wf-1")
    assert delivery.ce_source == "agentlog/test"
    assert delivery.ce_time == WHEN
    assert delivery.headers["x"] == b"\xff"


def test_missing_or_unknown_type_is_unknown_type() -> None:
    """No ce_type, or one no model is registered for, is an unknown-type error."""
    envelope = _encoded()
    with pytest.raises(UnknownTypeError):
        decode_envelope(
            replace(_record(envelope), headers=_without(tuple(envelope.headers), "ce_type"))
        )
    headers = (*_without(tuple(envelope.headers), "ce_type"), ("ce_type", b"agentlog.nope.v1"))
    with pytest.raises(UnknownTypeError):
        decode_envelope(replace(_record(envelope), headers=headers))


@pytest.mark.parametrize("value", [b"{not json", b"\xff\xfe\x00", b"", None])
def test_bad_json_or_bytes_is_malformed(value: bytes | None) -> None:
    """A value that is not JSON (or no value at all) is malformed."""
    with pytest.raises(MalformedRecordError):
        decode_envelope(replace(_record(_encoded()), value=value))


@pytest.mark.parametrize("missing", ["ce_id", "ce_source", "ce_specversion"])
def test_envelope_without_required_attributes_is_malformed(missing: str) -> None:
    """A record missing a required CloudEvents attribute is malformed."""
    envelope = _encoded()
    with pytest.raises(MalformedRecordError):
        decode_envelope(
            replace(_record(envelope), headers=_without(tuple(envelope.headers), missing))
        )


def test_bad_time_header_is_malformed() -> None:
    """An unparseable ce_time is malformed rather than a crash."""
    envelope = _encoded()
    headers = (*_without(tuple(envelope.headers), "ce_time"), ("ce_time", b"yesterday"))
    with pytest.raises(MalformedRecordError):
        decode_envelope(replace(_record(envelope), headers=headers))


def test_schema_violation_is_invalid() -> None:
    """Valid JSON that fails the model's validation is invalid, not malformed."""
    with pytest.raises(InvalidMessageError):
        decode_envelope(replace(_record(_encoded()), value=b'{"goal": "no"}'))


def test_dead_letter_keeps_the_original_and_adds_reasons() -> None:
    """A dead letter carries the original key/value/headers plus every dlq_ header."""
    record = _record(_encoded(ce_id="id-9"))
    letter = dead_letter_for(
        record, DeadLetterReason.INVALID, "x" * 5000, service="writer", now=WHEN
    )
    headers = dict(letter.headers)
    assert (letter.topic, letter.key, letter.value) == ("t.dlq", record.key, record.value)
    assert all(headers[name] == value for name, value in record.headers)
    assert headers["dlq_reason"] == b"invalid"
    assert headers["dlq_error"] == b"x" * 1000
    assert headers["dlq_origin_topic"] == b"t"
    assert (headers["dlq_origin_partition"], headers["dlq_origin_offset"]) == (b"2", b"7")
    assert headers["dlq_service"] == b"writer"
    assert headers["dlq_time"] == b"2026-01-02T03:04:05Z"


def test_retry_policy_backs_off_exponentially_with_a_cap() -> None:
    """Delays double per failed attempt and stop growing at the cap."""
    policy = RetryPolicy(tries=5, backoff_s=0.1, multiplier=2.0, max_backoff_s=0.3)
    assert [policy.delay_after(n) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.3, 0.3]
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(tries=0)
