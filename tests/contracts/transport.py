"""The transport contract: ``KafkaBus`` and ``InMemoryBus`` must both pass these tests.

Subclass ``TransportContract`` as ``Test<Adapter>`` and override the ``harness`` fixture with a
``TransportHarness`` for the adapter. Every test uses fresh topics and groups.
"""

from __future__ import annotations

import asyncio
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from schemas.messages import DraftResult, GoalSubmitted, Provenance
from shared.auth import (
    Authenticator,
    Keyring,
    Principal,
    Role,
    Signer,
    Verifier,
)
from shared.auth.keys import TrustedKey
from shared.transport import (
    Bus,
    Delivery,
    Handler,
    RawRecord,
    RecordTooLargeError,
    RejectedError,
    RetryPolicy,
    Subscription,
    TransientError,
)
from shared.transport.envelope import encode_envelope

__all__ = ["Collector", "TransportContract", "TransportHarness", "goal", "span_exporter"]

#: Upper bound on any wait for a delivery; a timeout fails the test, it asserts nothing.
WAIT_S = 20.0
FAST_RETRY = RetryPolicy(tries=3, backoff_s=0.01)


class TransportHarness(ABC):
    """How the contract drives one adapter: buses, raw records in, raw records out."""

    @abstractmethod
    def make_bus(
        self,
        service: str,
        topics: Sequence[str],
        *,
        retry: RetryPolicy = FAST_RETRY,
        drain_timeout_s: float = WAIT_S,
        signer: Signer | None = None,
        max_record_bytes: int = 1_000_000,
    ) -> Bus:
        """A new, unstarted bus; buses from one harness share a broker."""

    @abstractmethod
    async def inject_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> RawRecord:
        """Write a record bypassing the envelope; returns where it landed."""

    @abstractmethod
    async def read_raw(self, topic: str, count: int) -> list[RawRecord]:
        """The first ``count`` records of ``topic`` (all partitions), waiting for them."""

    def new_topic(self) -> str:
        """A topic name no other test uses."""
        return f"contract.{uuid.uuid4().hex[:12]}"


class Collector:
    """A handler that remembers deliveries and lets a test wait for them."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._changed = asyncio.Condition()

    async def __call__(self, delivery: Delivery) -> None:
        async with self._changed:
            self.deliveries.append(delivery)
            self._changed.notify_all()

    async def wait_for(self, done: Callable[[list[Delivery]], bool]) -> list[Delivery]:
        """Wait until ``done(deliveries)`` holds."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: done(self.deliveries)), timeout=WAIT_S
            )
        return list(self.deliveries)

    async def wait_count(self, count: int) -> list[Delivery]:
        """Wait for ``count`` deliveries."""
        return await self.wait_for(lambda seen: len(seen) >= count)


def goal(text: str, workflow_id: str = "wf-contract") -> GoalSubmitted:
    """A valid message."""
    return GoalSubmitted(workflow_id=workflow_id, goal=text)


def _goal_text(delivery: Delivery) -> str:
    assert isinstance(delivery.message, GoalSubmitted)
    return delivery.message.goal


def ce_headers(ce_type: str | None = GoalSubmitted.TYPE) -> list[tuple[str, bytes]]:
    """A valid binary-mode envelope for raw records (optionally without ``ce_type``)."""
    headers = [
        ("ce_id", uuid.uuid4().hex.encode()),
        ("ce_source", b"agentlog/raw"),
        ("ce_specversion", b"1.0"),
        ("content-type", b"application/json"),
    ]
    return headers if ce_type is None else [*headers, ("ce_type", ce_type.encode())]


_exporter: InMemorySpanExporter | None = None


def span_exporter() -> InMemorySpanExporter:
    """An in-memory exporter on the global SDK tracer provider (installed on first use)."""
    global _exporter
    if _exporter is None:
        if not isinstance(trace.get_tracer_provider(), TracerProvider):
            trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider), "a non-SDK tracer provider is installed"
        _exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
    return _exporter


async def _finished_span(kind: SpanKind, name: str) -> ReadableSpan:
    """Wait for the span to end (spans end just after the handler returns)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while loop.time() < deadline:
        for span in span_exporter().get_finished_spans():
            if span.kind == kind and span.name == name:
                return span
        await asyncio.sleep(0.01)  # polling for the span to be exported, not a timing assumption
    raise TimeoutError(f"no finished {kind.name} span {name!r}")


class TransportContract:
    """The behaviour every Bus adapter shares."""

    @pytest.fixture
    def harness(self, request: pytest.FixtureRequest) -> TransportHarness:
        """Overridden per adapter (``request`` lets an override use session fixtures)."""
        raise NotImplementedError("an adapter's test class must override harness")

    @pytest.fixture
    def topic(self, harness: TransportHarness) -> str:
        """A fresh topic for this test."""
        return harness.new_topic()

    @pytest.fixture
    def group(self) -> str:
        """A fresh consumer group for this test."""
        return f"agentlog.contract-{uuid.uuid4().hex[:8]}"

    async def _consume(self, bus: Bus, topic: str, group: str, handler: Handler) -> None:
        await bus.subscribe(Subscription([topic], group, handler, "contract"))

    # --- round trip ----------------------------------------------------------------

    async def test_round_trip_carries_envelope_and_key(
        self, harness: TransportHarness, topic: str, group: str
    ) -> None:
        """A published message arrives equal, with every ce_ attribute, its key and subject."""
        sent = goal("write a report", "wf-rt")
        seen = Collector()
        async with harness.make_bus("producer", [topic]) as bus:
            await self._consume(bus, topic, group, seen)
            await bus.publish(topic, sent, key="wf-rt", ce_id="id-rt-1")
            [delivery] = await seen.wait_count(1)
        assert delivery.message == sent
        assert (delivery.topic, delivery.key, delivery.ce_id) == (topic, "wf-rt", "id-rt-1")
        assert delivery.ce_type == GoalSubmitted.TYPE
        assert delivery.ce_source == "agentlog/producer"
        assert delivery.ce_subject == "wf-rt"
        assert isinstance(delivery.ce_time, datetime)
        assert delivery.ce_time.tzinfo is not None
        assert delivery.headers["ce_specversion"] == b"1.0"
        assert delivery.headers["content-type"] == b"application/json"
        assert delivery.headers["ce_type"] == GoalSubmitted.TYPE.encode()

    async def test_records_with_one_key_arrive_in_order(
        self, harness: TransportHarness, topic: str, group: str
    ) -> None:
        """Messages sharing a key (workflow id) are delivered in publish order."""
        keys = ["wf-a", "wf-b", "wf-c"]
        seen = Collector()
        async with harness.make_bus("producer", [topic]) as bus:
            for i in range(10):
                for key in keys:
                    await bus.publish(topic, goal(f"step {i:02d}", key), key=key)
            await self._consume(bus, topic, group, seen)
            deliveries = await seen.wait_count(30)
        for key in keys:
            texts = [_goal_text(d) for d in deliveries if d.key == key]
            assert texts == [f"step {i:02d}" for i in range(10)]

    async def test_queued_records_with_one_key_arrive_in_queue_order(
        self, harness: TransportHarness, topic: str, group: str
    ) -> None:
        """Messages queued without waiting are acknowledged, and arrive in the order queued."""
        keys = ["wf-a", "wf-b", "wf-c"]
        seen = Collector()
        async with harness.make_bus("producer", [topic]) as bus:
            acks = [
                await bus.publish_queued(topic, goal(f"step {i:02d}", key), key=key)
                for i in range(10)
                for key in keys
            ]
            await asyncio.wait_for(asyncio.gather(*acks), WAIT_S)
            await self._consume(bus, topic, group, seen)
            deliveries = await seen.wait_count(30)
        for key in keys:
            texts = [_goal_text(d) for d in deliveries if d.key == key]
            assert texts == [f"step {i:02d}" for i in range(10)]

    async def test_custom_headers_round_trip(
        self, harness: TransportHarness, topic: str, group: str
    ) -> None:
        """Application headers arrive byte for byte, next to the trace and ce_ headers."""
        custom = {"x-tenant": b"acme", "x-binary": bytes(range(256))}
        seen = Collector()
        async with harness.make_bus("producer", [topic]) as bus:
            await self._consume(bus, topic, group, seen)
            await bus.publish(topic, goal("headers", "wf-h"), key="wf-h", headers=custom)
            [delivery] = await seen.wait_count(1)
        assert {name: delivery.headers[name] for name in custom} == custom
        assert "ce_id" in delivery.headers

    # --- at-least-once -------------------------------------------------------------

    async def test_uncommitted_record_is_redelivered_after_restart(
        self, harness: TransportHarness, topic: str, group: str
    ) -> None:
        """A consumer stopped while its handler never returned leaves the record to the next."""
        started = asyncio.Event()

        async def stuck(delivery: Delivery) -> None:
            started.set()
            await asyncio.Event().wait()  # a handler that never finishes: the "crash"

        first = harness.make_bus("consumer", [topic], drain_timeout_s=0.2)
        async with first:
            await first.publish(topic, goal("survive a crash", "wf-r"), key="wf-r", ce_id="id-r")
            await self._consume(first, topic, group, stuck)
            await asyncio.wait_for(started.wait(), timeout=WAIT_S)
        seen = Collector()
        async with harness.make_bus("consumer", [topic]) as second:
            await self._consume(second, topic, group, seen)
            [delivery] = await seen.wait_count(1)
        assert delivery.ce_id == "id-r"

    async def test_committed_record_is_not_redelivered(
        self, harness: TransportHarness, topic: str, group: str
    ) -> None:
        """After a handler returned, a restarted group resumes after that record."""
        first_seen = Collector()
        async with harness.make_bus("consumer", [topic]) as first:
            await first.publish(topic, goal("once", "wf-c"), key="wf-c", ce_id="id-1")
            await self._consume(first, topic, group, first_seen)
            await first_seen.wait_count(1)
        seen = Collector()
        async with harness.make_bus("consumer", [topic]) as second:
            await second.publish(topic, goal("twice", "wf-c"), key="wf-c", ce_id="id-2")
            await self._consume(second, topic, group, seen)
            await seen.wait_for(lambda d: any(x.ce_id == "id-2" for x in d))
        assert [d.ce_id for d in seen.deliveries] == ["id-2"]

    # --- dead-lettering ------------------------------------------------------------

    async def test_bad_records_are_dead_lettered_and_the_partition_moves_on(
        self, harness: TransportHarness, topic: str, group: str
    ) -> None:
        """Malformed, invalid and unknown-type records land on the DLQ with reasons; the
        valid message behind them (same key, same partition) is still handled."""
        key = b"wf-dlq"
        bad = {
            "malformed": (b"\xff\x00{not json", ce_headers()),
            "invalid": (b'{"goal": "no", "unexpected": true}', ce_headers()),
            "unknown-type": (b'{"goal": "fine"}', ce_headers("agentlog.nope.v1")),
            "missing-type": (b'{"goal": "fine"}', ce_headers(None)),
        }
        seen = Collector()
        async with harness.make_bus("consumer", [topic]) as bus:
            injected = {
                name: await harness.inject_raw(topic, key, value, headers)
                for name, (value, headers) in bad.items()
            }
            await bus.publish(topic, goal("still handled", "wf-dlq"), key="wf-dlq")
            await self._consume(bus, topic, group, seen)
            [delivery] = await seen.wait_count(1)
            letters = await harness.read_raw(f"{topic}.dlq", len(bad))
        assert delivery.message == goal("still handled", "wf-dlq")
        by_offset = {int(dict(r.headers)["dlq_origin_offset"]): r for r in letters}
        expected_reason = {"missing-type": "unknown-type"}
        for name, original in injected.items():
            letter = by_offset[original.offset]
            headers = dict(letter.headers)
            assert (letter.key, letter.value) == (original.key, original.value)
            assert all(headers[n] == v for n, v in original.headers)
            assert headers["dlq_reason"] == expected_reason.get(name, name).encode()
            assert headers["dlq_origin_topic"] == topic.encode()
            assert headers["dlq_origin_partition"] == str(original.partition).encode()
            assert headers["dlq_service"] == b"contract"
            assert datetime.fromisoformat(headers["dlq_time"].decode()).tzinfo is not None
            assert 0 < len(headers["dlq_error"]) <= 1000

    async def test_failing_handler_is_retried_then_dead_lettered(
        self, harness: TransportHarness, topic: str, group: str
    ) -> None:
        """A handler that always raises gets the record `tries` times, then it is
        dead-lettered as handler-error and the next record is handled."""
        attempts: list[str] = []
        seen = Collector()

        async def handler(delivery: Delivery) -> None:
            if delivery.ce_id == "poison":
                attempts.append(delivery.ce_id)
                raise RuntimeError("boom")
            await seen(delivery)

        async with harness.make_bus("consumer", [topic]) as bus:
            await bus.publish(topic, goal("poison", "wf-p"), key="wf-p", ce_id="poison")
            await bus.publish(topic, goal("fine", "wf-p"), key="wf-p", ce_id="fine")
            await self._consume(bus, topic, group, handler)
            await seen.wait_count(1)
            [letter] = await harness.read_raw(f"{topic}.dlq", 1)
        assert attempts == ["poison"] * FAST_RETRY.tries
        headers = dict(letter.headers)
        assert headers["dlq_reason"] == b"handler-error"
        assert b"RuntimeError: boom" in headers["dlq_error"]
        assert headers["ce_id"] == b"poison"

    async def test_transient_failure_is_retried_past_the_limit_and_never_dead_lettered(
        self, harness: TransportHarness, topic: str, group: str
    ) -> None:
        """A handler raising TransientError (a dependency is down) gets the same record again,
        beyond the retry limit, until it succeeds; it never reaches the DLQ."""
        outages = FAST_RETRY.tries + 2
        attempts: list[str] = []
        seen = Collector()

        async def handler(delivery: Delivery) -> None:
            attempts.append(delivery.ce_id)
            if delivery.ce_id == "poison":
                raise RuntimeError("boom")
            if len(attempts) <= outages:
                raise TransientError("database unavailable")
            await seen(delivery)

        async with harness.make_bus("consumer", [topic]) as bus:
            await bus.publish(topic, goal("precious", "wf-t"), key="wf-t", ce_id="precious")
            # Same key, so it queues behind: the first dead letter must be this one.
            await bus.publish(topic, goal("poison", "wf-t"), key="wf-t", ce_id="poison")
            await self._consume(bus, topic, group, handler)
            [delivery] = await seen.wait_count(1)
            [letter] = await harness.read_raw(f"{topic}.dlq", 1)
        assert delivery.ce_id == "precious"
        assert attempts[: outages + 1] == ["precious"] * (outages + 1)
        assert dict(letter.headers)["ce_id"] == b"poison"

    async def test_a_partition_waiting_for_a_dependency_shows_in_health_until_it_moves(
        self, harness: TransportHarness, topic: str, group: str
    ) -> None:
        """While a handler waits on a dependency, health() names the partition and the reason;
        once the record is handled, the partition is no longer listed."""
        release = asyncio.Event()
        seen = Collector()
        stuck_while_waiting: list[dict[str, Any]] = []

        async def handler(delivery: Delivery) -> None:
            if not release.is_set():
                raise TransientError("database unavailable")
            await seen(delivery)

        async with harness.make_bus("consumer", [topic]) as bus:
            await bus.publish(topic, goal("waits", "wf-w"), key="wf-w", ce_id="waits")
            await self._consume(bus, topic, group, handler)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT_S
            while loop.time() < deadline:
                stuck = bus.health()["stuck_partitions"]
                assert isinstance(stuck, dict)
                if stuck:
                    stuck_while_waiting.append(stuck)
                    break
                await asyncio.sleep(0.02)  # polling health, as a status page does
            release.set()
            await seen.wait_count(1)
            cleared = bus.health()["stuck_partitions"]
        [stuck] = stuck_while_waiting
        [(where, info)] = stuck.items()
        assert where.startswith(f"{topic}[")
        assert "database unavailable" in info["reason"]
        assert cleared == {}

    async def test_records_the_subscription_does_not_want_are_skipped_unread(
        self, harness: TransportHarness, topic: str, group: str
    ) -> None:
        """A ``wants`` filter skips records by their headers, before decoding: even a malformed
        one is skipped, not dead-lettered; the wanted record behind them is handled."""
        seen = Collector()

        def wants(record: Any) -> bool:
            return dict(record.headers).get("x-kind") == b"wanted"

        async with harness.make_bus("consumer", [topic]) as bus:
            await bus.publish(topic, goal("skip me", "wf-f"), key="wf-f", ce_id="skipped")
            await harness.inject_raw(topic, b"wf-f", b"\xffnot json", ce_headers())
            for ce_id in ("wanted", "wanted-too"):
                await bus.publish(
                    topic,
                    goal("handle me", "wf-f"),
                    key="wf-f",
                    ce_id=ce_id,
                    headers={"x-kind": b"wanted"},
                )
            await bus.subscribe(Subscription([topic], group, seen, "contract", wants=wants))
            # Same key, same partition, in order: skipped records would have come first.
            delivered = await seen.wait_count(2)
        assert [d.ce_id for d in delivered] == ["wanted", "wanted-too"]

    # --- tracing -------------------------------------------------------------------

    async def test_trace_context_flows_from_producer_to_handler(
        self, harness: TransportHarness, topic: str, group: str
    ) -> None:
        """The handler runs in a CONSUMER span whose parent is the publish's PRODUCER span."""
        span_exporter()
        in_handler: list[trace.SpanContext] = []

        async def handler(delivery: Delivery) -> None:
            in_handler.append(trace.get_current_span().get_span_context())

        async with harness.make_bus("producer", [topic]) as bus:
            await self._consume(bus, topic, group, handler)
            await bus.publish(topic, goal("traced", "wf-t"), key="wf-t")
            producer = await _finished_span(SpanKind.PRODUCER, f"send {topic}")
            consumer = await _finished_span(SpanKind.CONSUMER, f"process {topic}")
        assert producer.context is not None
        assert consumer.context is not None
        assert consumer.context.trace_id == producer.context.trace_id
        assert consumer.parent is not None
        assert consumer.parent.span_id == producer.context.span_id
        assert in_handler[0].span_id == consumer.context.span_id

    # --- size limits ---------------------------------------------------------------

    async def test_oversized_record_is_dead_lettered_cut_and_the_partition_moves_on(
        self, harness: TransportHarness, topic: str, group: str
    ) -> None:
        """A record over max_record_bytes between two valid ones is parked cut (reason
        oversized, original size and digest in headers); both valid ones are handled."""
        limit = 20_000
        seen = Collector()
        async with harness.make_bus("consumer", [topic], max_record_bytes=limit) as bus:
            await bus.publish(topic, goal("before", "wf-big"), key="wf-big", ce_id="before")
            huge = b'{"goal": "' + b"x" * 50_000 + b'"}'
            original = await harness.inject_raw(topic, b"wf-big", huge, ce_headers())
            await bus.publish(topic, goal("after", "wf-big"), key="wf-big", ce_id="after")
            await self._consume(bus, topic, group, seen)
            delivered = await seen.wait_count(2)
            [letter] = await harness.read_raw(f"{topic}.dlq", 1)
        assert [d.ce_id for d in delivered] == ["before", "after"]
        headers = dict(letter.headers)
        assert headers["dlq_reason"] == b"oversized"
        assert headers["dlq_original_size"] == str(original.size).encode()
        assert len(headers["dlq_original_sha256"]) == 64
        assert letter.value is not None
        assert len(letter.value) == 1024
        assert huge.startswith(letter.value)

    async def test_publishing_an_oversized_message_is_refused_before_sending(
        self, harness: TransportHarness, topic: str, group: str
    ) -> None:
        """publish() raises RecordTooLargeError for a record over the limit and sends nothing."""
        seen = Collector()
        async with harness.make_bus("producer", [topic], max_record_bytes=10_000) as bus:
            big = GoalSubmitted(workflow_id="wf-s", goal="y" * 3_999, constraints=["z" * 400] * 20)
            with pytest.raises(RecordTooLargeError, match="10000-byte record limit"):
                await bus.publish(topic, big, key="wf-s", ce_id="big")
            await bus.publish(topic, goal("small", "wf-s"), key="wf-s", ce_id="small")
            await self._consume(bus, topic, group, seen)
            delivered = await seen.wait_count(1)
        assert [d.ce_id for d in delivered] == ["small"]

    # --- keys and authentication ---------------------------------------------------

    async def test_record_keyed_for_another_workflow_is_dead_lettered(
        self, harness: TransportHarness, topic: str, group: str
    ) -> None:
        """A record whose key is not its payload's workflow id is parked as key-mismatch."""
        seen = Collector()
        async with harness.make_bus("consumer", [topic]) as bus:
            value = b'{"workflow_id": "wf-victim", "goal": "hijack the order"}'
            await harness.inject_raw(topic, b"wf-other", value, ce_headers())
            await bus.publish(topic, goal("fine", "wf-other"), key="wf-other", ce_id="fine")
            await self._consume(bus, topic, group, seen)
            delivered = await seen.wait_count(1)
            [letter] = await harness.read_raw(f"{topic}.dlq", 1)
        assert [d.ce_id for d in delivered] == ["fine"]
        assert dict(letter.headers)["dlq_reason"] == b"key-mismatch"

    async def test_signed_records_carry_the_verified_principal(
        self, harness: TransportHarness, topic: str, group: str
    ) -> None:
        """A record signed by a trusted key is delivered with that principal, whatever the
        payload claims about who sent it."""
        keys = _Keys()
        seen = Collector()
        async with harness.make_bus("producer", [topic], signer=keys.signer("upstream")) as bus:
            await bus.subscribe(
                Subscription([topic], group, seen, "contract", authenticator=keys.authenticator)
            )
            claimed = GoalSubmitted(workflow_id="wf-sig", goal="signed", requested_by="root")
            await bus.publish(topic, claimed, key="wf-sig")
            [delivery] = await seen.wait_count(1)
        assert delivery.principal == keys.principals["upstream"]

    async def test_unsigned_forged_stale_and_unauthorised_records_are_dead_lettered(
        self, harness: TransportHarness, topic: str, group: str
    ) -> None:
        """Unsigned, unknown-key, tampered and replayed (stale) records are parked as
        unauthenticated, a result signed by another agent as unauthorized; a valid one passes."""
        keys = _Keys()
        stranger = _Keys()
        draft = _draft_result("wf-auth")
        old = datetime.now(UTC) - timedelta(hours=2)
        forged = {
            "unsigned": _raw(draft, None),
            "unknown-key": _raw(draft, stranger.signer("writer")),
            "tampered": _tampered(_raw(draft, keys.signer("writer"))),
            "replayed": _raw(draft, keys.signer("writer"), time=old),
            "wrong-agent": _raw(draft, keys.signer("critic")),
        }
        seen = Collector()
        async with harness.make_bus("consumer", [topic], signer=keys.signer("writer")) as bus:
            for value, headers in forged.values():
                await harness.inject_raw(topic, b"wf-auth", value, headers)
            await bus.publish(topic, draft, key="wf-auth", ce_id="genuine")
            await bus.subscribe(
                Subscription([topic], group, seen, "contract", authenticator=keys.authenticator)
            )
            delivered = await seen.wait_count(1)
            letters = await harness.read_raw(f"{topic}.dlq", len(forged))
        assert [d.ce_id for d in delivered] == ["genuine"]
        assert delivered[0].principal == keys.principals["writer"]
        reasons = sorted(dict(r.headers)["dlq_reason"].decode() for r in letters)
        assert reasons == ["unauthenticated"] * 4 + ["unauthorized"]

    async def test_handler_rejection_dead_letters_at_once_with_its_reason(
        self, harness: TransportHarness, topic: str, group: str
    ) -> None:
        """A handler raising RejectedError is not retried: the record is parked with the
        handler's reason and detail, and the next record is handled."""
        calls: list[str] = []
        seen = Collector()

        async def handler(delivery: Delivery) -> None:
            calls.append(delivery.ce_id)
            if delivery.ce_id == "conflicting":
                raise RejectedError("conflict", "workflow wf-x exists with another goal")
            await seen(delivery)

        async with harness.make_bus("consumer", [topic]) as bus:
            await bus.publish(topic, goal("first", "wf-x"), key="wf-x", ce_id="conflicting")
            await bus.publish(topic, goal("second", "wf-x"), key="wf-x", ce_id="next")
            await self._consume(bus, topic, group, handler)
            await seen.wait_count(1)
            [letter] = await harness.read_raw(f"{topic}.dlq", 1)
        assert calls == ["conflicting", "next"]
        headers = dict(letter.headers)
        assert headers["dlq_reason"] == b"conflict"
        assert headers["dlq_error"] == b"workflow wf-x exists with another goal"


class _Keys:
    """A fresh set of principals with their keys, and an authenticator trusting them."""

    def __init__(self) -> None:
        self.principals = {
            "upstream": Principal("upstream", Role.UPSTREAM),
            "writer": Principal("writer", Role.AGENT, "writer"),
            "critic": Principal("critic", Role.AGENT, "critic"),
        }
        self._private = {name: Ed25519PrivateKey.generate() for name in self.principals}
        keyring = Keyring(
            TrustedKey(principal, self._private[name].public_key())
            for name, principal in self.principals.items()
        )
        self.authenticator = Authenticator(Verifier(keyring))

    def signer(self, name: str) -> Signer:
        """Signs as ``name``."""
        return Signer(name, self._private[name])


def _draft_result(workflow_id: str) -> DraftResult:
    return DraftResult(
        workflow_id=workflow_id,
        task_id="writer-2",
        attempt=1,
        provenance=Provenance(provider="offline", model="m", strategy_version="v"),
        draft="# Draft",
    )


def _raw(
    message: DraftResult, signer: Signer | None, *, time: datetime | None = None
) -> tuple[bytes, list[tuple[str, bytes]]]:
    envelope = encode_envelope(
        message, key=message.workflow_id, source="agentlog/raw", time=time or datetime.now(UTC)
    )
    headers = list(envelope.headers)
    if signer is not None:
        headers.append(
            ("agentlog-signature", signer.header(dict(headers), envelope.key, envelope.value))
        )
    return envelope.value, headers


def _tampered(raw: tuple[bytes, list[tuple[str, bytes]]]) -> tuple[bytes, list[tuple[str, bytes]]]:
    value, headers = raw
    return value.replace(b"# Draft", b"# Forged"), headers
