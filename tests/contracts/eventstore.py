"""The event store contract: every adapter must pass these tests, which keeps the fake honest.

Subclass ``EventStoreContract`` as ``Test<Adapter>`` and override the ``make_store`` fixture with
a factory of started, empty stores; stores from one factory share their data.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from shared.eventstore import (
    AlreadyProcessedError,
    ConcurrencyConflictError,
    EventStore,
    EventStoreError,
    NewEvent,
    RecordedEvent,
    Tracking,
)
from shared.eventstore.chain import ZERO_HASH, body_digest, link_hash, recorded_micros

__all__ = ["EventStoreContract", "StoreFactory", "follow_while"]

StoreFactory = Callable[[], Awaitable[EventStore]]


def ev(type_: str = "Noted", **data: Any) -> NewEvent:
    """A small event."""
    return NewEvent(type=type_, data=data)


def chained_hash(prev_hash: str, event: RecordedEvent) -> str:
    """The hash shared.eventstore.chain defines for ``event`` after ``prev_hash``."""
    digest = body_digest(
        stream_id=event.stream_id,
        version=event.version,
        type=event.type,
        schema_version=event.schema_version,
        event_id=event.event_id,
        data=event.data,
        metadata=event.metadata,
    )
    return link_hash(prev_hash, digest, recorded_micros(event.recorded_at))


async def follow_while(
    store: EventStore, writers: Awaitable[Any], batch: int = 5
) -> list[RecordedEvent]:
    """Poll read_all from the last seen position while ``writers`` run, then drain."""
    task = asyncio.ensure_future(writers)
    seen: list[RecordedEvent] = []
    while True:
        done = task.done()  # sampled first: an empty read after it means nothing is left
        page = await store.read_all(after_position=seen[-1].position if seen else 0, limit=batch)
        seen.extend(page)
        if not page:
            if done:
                break
            await asyncio.sleep(0.001)  # yield to the writers; not a timing assumption
    await task  # re-raise a writer's failure
    return seen


class EventStoreContract:
    """The behaviour every EventStore adapter shares."""

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        """Overridden per adapter: a factory of started stores sharing one empty database.

        The override may be an async generator that asks for other fixtures, and stops the
        stores and removes their data afterwards.
        """
        raise NotImplementedError("an adapter's test class must override make_store")

    @pytest.fixture
    async def store(self, make_store: StoreFactory) -> EventStore:
        """A started, empty store."""
        return await make_store()

    # --- appends and optimistic concurrency -------------------------------------------

    async def test_new_stream_is_at_version_zero(self, store: EventStore) -> None:
        """A missing stream reads as version 0 and empty; appending at 0 numbers from 1."""
        assert await store.stream_version("wf-1") == 0
        assert await store.read("wf-1") == []
        recorded = await store.append("wf-1", [ev("A"), ev("B")], expected_version=0)
        assert [e.version for e in recorded] == [1, 2]
        assert await store.stream_version("wf-1") == 2

    async def test_append_returns_what_read_returns(self, store: EventStore) -> None:
        """The recorded events an append returns equal those read back."""
        new = [NewEvent("A", {"n": 1}, schema_version=2, metadata={"actor": "x"}), ev("B")]
        recorded = await store.append("wf-1", new, 0)
        assert recorded == await store.read("wf-1") == await store.read_all()
        assert [(e.type, e.event_id, e.schema_version) for e in recorded] == [
            (n.type, n.event_id, n.schema_version) for n in new
        ]
        assert all(e.stream_id == "wf-1" and e.recorded_at.tzinfo for e in recorded)

    @pytest.mark.parametrize("expected", [0, 1, 3])
    async def test_wrong_expected_version_writes_nothing(
        self, store: EventStore, expected: int
    ) -> None:
        """An expected version other than the current one raises and writes nothing."""
        await store.append("wf-1", [ev(), ev()], 0)
        with pytest.raises(ConcurrencyConflictError) as caught:
            await store.append("wf-1", [ev("Late")], expected)
        assert (caught.value.expected_version, caught.value.actual_version) == (expected, 2)
        assert [e.type for e in await store.read("wf-1")] == ["Noted", "Noted"]
        assert len(await store.read_all()) == 2

    async def test_concurrent_writers_at_one_version_exactly_one_wins(
        self, store: EventStore
    ) -> None:
        """Of several appends racing at the same expected version, exactly one succeeds."""
        results = await asyncio.gather(
            *(store.append("wf-1", [ev(f"W{i}"), ev()], 0) for i in range(6)),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, list)]
        assert len(winners) == 1
        assert all(isinstance(r, ConcurrencyConflictError) for r in results if r not in winners)
        assert await store.read("wf-1") == winners[0]

    @pytest.mark.parametrize(
        ("bad", "error"),
        [
            ({"x": object()}, TypeError),
            ({"x": math.nan}, ValueError),
            ({(1, 2): "tuple key"}, TypeError),
        ],
    )
    async def test_batch_with_invalid_later_event_writes_nothing(
        self, store: EventStore, bad: dict[Any, Any], error: type[Exception]
    ) -> None:
        """A batch whose later event cannot be stored as JSON raises and writes none of it."""
        with pytest.raises(error):
            await store.append("wf-1", [ev("A"), NewEvent("B", bad)], 0)
        assert await store.stream_version("wf-1") == 0
        assert await store.read_all() == []

    async def test_batch_with_duplicate_event_id_writes_nothing(self, store: EventStore) -> None:
        """Event ids are unique across streams and within a batch; a clash writes nothing."""
        [first] = await store.append("wf-1", [ev()], 0)
        reused = NewEvent("B", {}, event_id=first.event_id)
        with pytest.raises(EventStoreError):
            await store.append("wf-2", [ev("A"), reused], 0)
        twice = ev("C")
        with pytest.raises(EventStoreError):
            await store.append("wf-2", [twice, twice], 0)
        assert await store.read_all() == [first]
        assert await store.stream_version("wf-2") == 0

    async def test_invalid_identifiers_are_rejected(self, store: EventStore) -> None:
        """NUL in identifiers, empty stream ids and negative versions raise ValueError."""
        for call in (
            store.append("wf\x00", [ev()], 0),
            store.append("", [ev()], 0),
            store.append("wf-1", [ev("A\x00")], 0),
            store.append("wf-1", [ev()], -1),
            store.append("wf-1", [ev()], 0, tracking=Tracking("c", "k\x00")),
        ):
            with pytest.raises(ValueError, match="must"):
                await call
        assert await store.read_all() == []

    # --- reading -------------------------------------------------------------------------

    async def test_read_bounds(self, store: EventStore) -> None:
        """read honours after_version (exclusive) and up_to_version (inclusive)."""
        await store.append("wf-1", [ev(n=i) for i in range(1, 6)], 0)

        async def versions(**bounds: Any) -> list[int]:
            return [e.version for e in await store.read("wf-1", **bounds)]

        assert await versions() == [1, 2, 3, 4, 5]
        assert await versions(after_version=2) == [3, 4, 5]
        assert await versions(up_to_version=3) == [1, 2, 3]
        assert await versions(after_version=1, up_to_version=3) == [2, 3]
        assert await versions(after_version=5) == []

    async def test_read_all_follows_commit_order_across_streams(self, store: EventStore) -> None:
        """read_all returns every stream's events in the order they were appended."""
        order = [("a", 0), ("b", 0), ("a", 1), ("c", 0), ("b", 1)]
        for stream, version in order:
            await store.append(stream, [ev(f"{stream}{version}")], version)
        all_events = await store.read_all()
        assert [e.type for e in all_events] == ["a0", "b0", "a1", "c0", "b1"]
        positions = [e.position for e in all_events]
        assert positions == sorted(set(positions))

    async def test_read_all_pages_by_position(self, store: EventStore) -> None:
        """Paging with after_position and limit visits every event exactly once."""
        for i in range(7):
            await store.append(
                f"wf-{i % 3}", [ev(), ev()], await store.stream_version(f"wf-{i % 3}")
            )
        everything = await store.read_all()
        pages: list[RecordedEvent] = []
        while page := await store.read_all(pages[-1].position if pages else 0, limit=3):
            assert len(page) <= 3
            pages.extend(page)
        assert pages == everything
        assert len(everything) == 14
        assert await store.read_all(everything[-1].position) == []

    async def test_positions_follow_versions_within_a_batch(self, store: EventStore) -> None:
        """A batch's events get increasing positions in version order."""
        recorded = await store.append("wf-1", [ev() for _ in range(10)], 0)
        assert [e.position for e in recorded] == sorted(e.position for e in recorded)

    async def test_follower_sees_concurrent_appends_exactly_once(self, store: EventStore) -> None:
        """A follower polling read_all during concurrent appends sees every event once, in order."""
        rng = random.Random(7)

        async def writer(w: int) -> None:
            for version in range(0, 40, 2):
                await store.append(f"wf-{w}", [ev(w=w), ev(w=w)], version)
                await asyncio.sleep(rng.uniform(0, 0.002))

        seen = await follow_while(store, asyncio.gather(*(writer(w) for w in range(6))))
        positions = [e.position for e in seen]
        assert all(a < b for a, b in itertools.pairwise(positions))
        assert seen == await store.read_all(limit=10_000)
        assert len(seen) == 6 * 40

    # --- tracking (inbox) ------------------------------------------------------------------

    async def test_duplicate_tracking_key_raises_and_writes_nothing(
        self, store: EventStore
    ) -> None:
        """A second append with a recorded tracking key raises and writes nothing."""
        key = Tracking("supervisor", "msg-1")
        assert not await store.is_processed(key)
        await store.append("wf-1", [ev()], 0, tracking=key)
        assert await store.is_processed(key)
        with pytest.raises(AlreadyProcessedError) as caught:
            await store.append("wf-1", [ev("Again")], 1, tracking=key)
        assert (caught.value.consumer, caught.value.key) == ("supervisor", "msg-1")
        assert [e.type for e in await store.read_all()] == ["Noted"]

    async def test_same_key_for_another_consumer_is_independent(self, store: EventStore) -> None:
        """A tracking key is per consumer: another consumer may record the same key."""
        await store.append("wf-1", [ev()], 0, tracking=Tracking("a", "k"))
        await store.append("wf-2", [ev()], 0, tracking=Tracking("b", "k"))
        assert await store.is_processed(Tracking("b", "k"))
        assert not await store.is_processed(Tracking("c", "k"))

    async def test_tracking_only_append(self, store: EventStore) -> None:
        """An append without events records only the key; repeating it raises."""
        key = Tracking("summarizer", "msg-9")
        assert await store.append("wf-1", [], 0, tracking=key) == []
        assert await store.is_processed(key)
        assert (await store.stream_version("wf-1"), await store.list_streams()) == (0, [])
        with pytest.raises(AlreadyProcessedError):
            await store.append("wf-1", [], 0, tracking=key)
        assert await store.read_all() == []

    async def test_already_processed_wins_over_other_failures(self, store: EventStore) -> None:
        """A redelivery reports AlreadyProcessedError even when its version or ids clash too."""
        key = Tracking("supervisor", "msg-1")
        [first] = await store.append("wf-1", [ev()], 0, tracking=key)
        with pytest.raises(AlreadyProcessedError):
            await store.append("wf-1", [ev()], 0, tracking=key)
        redelivered = NewEvent(first.type, first.data, event_id=first.event_id)
        with pytest.raises(AlreadyProcessedError):
            await store.append("wf-1", [redelivered], 1, tracking=key)
        assert await store.read_all() == [first]

    async def test_failed_append_records_no_tracking(self, store: EventStore) -> None:
        """A conflicting append does not record its tracking key, so a retry can succeed."""
        await store.append("wf-1", [ev()], 0)
        key = Tracking("supervisor", "msg-2")
        with pytest.raises(ConcurrencyConflictError):
            await store.append("wf-1", [ev()], 0, tracking=key)
        assert not await store.is_processed(key)
        assert len(await store.append("wf-1", [ev()], 1, tracking=key)) == 1

    async def test_concurrent_duplicates_exactly_one_wins(self, store: EventStore) -> None:
        """Racing appends with one tracking key: one succeeds, the rest are already processed."""
        key = Tracking("writer", "msg-3")
        results = await asyncio.gather(
            *(store.append(f"wf-{i}", [ev()], 0, tracking=key) for i in range(5)),
            return_exceptions=True,
        )
        assert sum(isinstance(r, list) for r in results) == 1
        assert sum(isinstance(r, AlreadyProcessedError) for r in results) == 4
        assert len(await store.read_all()) == 1

    # --- watching a stream -------------------------------------------------------------------

    async def test_watch_wakes_on_appends_to_its_stream_only(
        self, store: EventStore, make_store: StoreFactory
    ) -> None:
        """A watch is set on entry, then by appends to its stream (any writer's), not others'."""
        writer = await make_store()
        async with store.watch("wf-1") as appended:
            assert appended.is_set()
            appended.clear()
            await writer.append("wf-2", [ev()], 0)
            await writer.append("wf-1", [ev()], 0, tracking=Tracking("c", "k"))
            await asyncio.wait_for(appended.wait(), 10)
            appended.clear()
            await writer.append("wf-2", [ev()], 1)
            await asyncio.sleep(0.2)  # time for a notification to arrive, were one sent
            assert not appended.is_set()
            await writer.append("wf-1", [ev()], 1)
            await asyncio.wait_for(appended.wait(), 10)

    async def test_tracking_only_appends_do_not_wake_a_watch(self, store: EventStore) -> None:
        """An append that records only a tracking key adds no event, so it wakes no reader."""
        await store.append("wf-1", [ev()], 0)
        async with store.watch("wf-1") as appended:
            appended.clear()
            await store.append("wf-1", [], 1, tracking=Tracking("c", "only"))
            await asyncio.sleep(0.2)
            assert not appended.is_set()

    async def test_watch_rejects_invalid_stream_ids(self, store: EventStore) -> None:
        """Watching an id no stream can have is refused like reading it."""
        with pytest.raises(ValueError, match="stream_id"):
            async with store.watch(""):
                pass

    # --- payloads ----------------------------------------------------------------------------

    async def _round_trip(self, store: EventStore, data: dict[str, Any]) -> dict[str, Any]:
        [recorded] = await store.append("wf-rt", [NewEvent("T", data, metadata=data)], 0)
        [read] = await store.read("wf-rt")
        assert recorded.data == read.data == read.metadata
        return read.data

    async def test_large_payload_round_trips(self, store: EventStore) -> None:
        """A 1 MB string and a 20k-element list round-trip exactly."""
        data = {"text": "x" * 1_000_000 + "é", "items": list(range(20_000))}
        assert await self._round_trip(store, data) == data

    async def test_unicode_round_trips(self, store: EventStore) -> None:
        """Emoji, CJK, RTL, combining marks and lone surrogates round-trip in keys and values."""
        data = {
            "emoji 😀👩‍💻": "🚀✨",
            "中文": "日本語 한국어",
            "rtl": "שלום عليكم \u200f",
            "combining": "e\u0301",
            "lone": "\ud800 and \udfff",
        }
        assert await self._round_trip(store, data) == data

    async def test_nul_round_trips_in_keys_and_values(self, store: EventStore) -> None:
        """Strings holding \\u0000, as keys and values at any depth, round-trip exactly."""
        data = {"a\x00b": "\x00", "nested": [{"\x00": ["x\x00y", "\\u0000"]}], "\x00": "\x00\x00"}
        assert await self._round_trip(store, data) == data

    async def test_structure_and_numbers_round_trip(self, store: EventStore) -> None:
        """Nesting, key order, big ints, floats, booleans and nulls round-trip exactly."""
        data: dict[str, Any] = {"z": 1, "a": {"deep": [[[{"k": None}]]], "t": True, "f": False}}
        data |= {"big": 2**80, "neg": -(2**70), "pi": 0.1 + 0.2, "tiny": 5e-324, "e": ""}
        read = await self._round_trip(store, data)
        assert read == data
        assert list(read) == list(data)
        assert read["pi"].hex() == data["pi"].hex()

    async def test_metadata_round_trips(self, store: EventStore) -> None:
        """Causation, correlation, trace context and actor come back as written."""
        metadata = {
            "causation_id": "msg-1",
            "correlation_id": "wf-1",
            "trace_context": {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
            "actor": "supervisor",
        }
        new = NewEvent("A", {}, metadata=metadata)
        await store.append("wf-1", [new], 0)
        [read] = await store.read("wf-1")
        assert (read.metadata, read.event_id) == (metadata, new.event_id)

    async def test_callers_cannot_mutate_recorded_events(self, store: EventStore) -> None:
        """Mutating appended or returned data leaves the stored event unchanged."""
        data: dict[str, Any] = {"items": [1, 2]}
        [recorded] = await store.append("wf-1", [NewEvent("A", data)], 0)
        data["items"].append(3)
        recorded.data["items"].append(4)
        (await store.read("wf-1"))[0].data["items"].append(5)
        assert (await store.read_all())[0].data == {"items": [1, 2]}

    # --- streams and checkpoints -------------------------------------------------------------

    async def test_list_streams_most_recent_first(self, store: EventStore) -> None:
        """list_streams orders by last append and reports each stream's head."""
        await store.append("a", [ev("Started")], 0)
        await store.append("b", [ev("Started")], 0)
        await store.append("a", [ev("Middle"), ev("Done")], 1)
        a, b = await store.list_streams()
        assert (a.stream_id, a.version, a.first_type, a.last_type) == ("a", 3, "Started", "Done")
        assert (b.stream_id, b.version) == ("b", 1)
        assert a.created_at <= b.created_at <= a.updated_at
        assert [s.stream_id for s in await store.list_streams(limit=1)] == ["a"]

    async def test_find_streams_matches_a_literal_prefix(self, store: EventStore) -> None:
        """find_streams lists ids starting with the prefix; % _ and \\ are not wildcards."""
        for stream_id in ("wf-abc1", "wf-abc2", "wf-xyz", "wf_%odd", "wfq%odd", "back\\slash"):
            await store.append(stream_id, [ev("Started")], 0)
        assert await store.find_streams("wf-x") == ["wf-xyz"]
        assert await store.find_streams("wf-xyz") == ["wf-xyz"]
        assert sorted(await store.find_streams("wf-abc", limit=5)) == ["wf-abc1", "wf-abc2"]
        assert len(await store.find_streams("wf")) == 2  # default limit: enough to see ambiguity
        assert len(await store.find_streams("wf", limit=1)) == 1
        assert await store.find_streams("wf_") == ["wf_%odd"]
        assert await store.find_streams("wfq%") == ["wfq%odd"]
        assert await store.find_streams("back\\") == ["back\\slash"]
        assert await store.find_streams("nope") == []
        with pytest.raises(ValueError, match="limit"):
            await store.find_streams("wf", limit=0)

    async def test_checkpoints_only_move_forward(self, store: EventStore) -> None:
        """A checkpoint starts at 0, advances, ignores older positions and is per name."""
        assert await store.load_checkpoint("relay") == 0
        await store.save_checkpoint("relay", 10)
        await store.save_checkpoint("relay", 4)
        assert await store.load_checkpoint("relay") == 10
        await store.save_checkpoint("relay", 12)
        assert await store.load_checkpoint("relay") == 12
        assert await store.load_checkpoint("other") == 0

    # --- the hash chain ------------------------------------------------------------------------

    async def test_hashes_chain_per_stream(self, store: EventStore) -> None:
        """Each event's hash links its stream's previous hash (zero first) to its content and
        time, exactly as shared.eventstore.chain defines it, whatever other streams do."""
        await store.append("a", [ev("A1", n=1), ev("A2")], 0)
        await store.append("b", [NewEvent("B1", {"k": [1]}, metadata={"actor": "x"})], 0)
        returned = await store.append("a", [ev("A3"), ev("A4", z=None)], 2)
        for stream in ("a", "b"):
            prev = ZERO_HASH
            for event in await store.read(stream):
                assert event.hash == chained_hash(prev, event)
                prev = event.hash
        assert returned == (await store.read("a"))[2:]
        assert len({e.hash for e in await store.read_all()}) == 5

    async def test_awkward_payloads_hash_as_read_back(self, store: EventStore) -> None:
        """The hash recomputes from the event as read, also for payloads JSON normalises
        (tuples, integer keys) and for NUL, lone surrogates, big numbers and non-ASCII keys."""
        data: dict[Any, Any] = {"t": (1, 2), 3: "int key", "\x00": "\ud800", "é": 2**70, "f": 0.1}
        [recorded] = await store.append("wf-odd", [NewEvent("T", data, metadata={"ü": 1})], 0)
        [read] = await store.read("wf-odd")
        assert read.hash == recorded.hash == chained_hash(ZERO_HASH, read)
        assert (read.data["t"], read.data["3"]) == ([1, 2], "int key")

    async def test_stream_head_keeps_the_last_hash(self, store: EventStore) -> None:
        """A stream's head records its version and its last event's hash; missing is None."""
        assert await store.stream_head("wf-1") is None
        await store.append("wf-1", [ev("Started"), ev()], 0)
        [last] = await store.append("wf-1", [ev("Done")], 2)
        head = await store.stream_head("wf-1")
        assert head is not None
        assert (head.version, head.first_type, head.last_type) == (3, "Started", "Done")
        assert head.last_hash == last.hash
        assert (await store.list_streams())[0] == head

    async def test_stream_heads_page_through_every_stream_in_code_point_order(
        self, store: EventStore
    ) -> None:
        """stream_heads pages by id in code-point order (not a locale's), each stream once."""
        ids = ["wf-2", "B", "a", "_x", "é", "wf_1", "Z9", "wf-10"]
        for stream_id in ids:
            await store.append(stream_id, [ev()], 0)
        seen: list[str] = []
        while page := await store.stream_heads(seen[-1] if seen else "", limit=3):
            assert len(page) <= 3
            seen.extend(h.stream_id for h in page)
        assert seen == sorted(ids)
        [head] = await store.stream_heads("wf-1", limit=1)
        assert head == await store.stream_head("wf-10")
        with pytest.raises(ValueError, match="limit"):
            await store.stream_heads(limit=0)
