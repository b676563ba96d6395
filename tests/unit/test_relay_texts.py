"""The relay sends commands whole: references to recorded texts are expanded from the stream."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

from schemas.messages import WriteTask
from schemas.registry import decode_message
from schemas.topics import WORKFLOW_EVENTS, task_topic
from services.supervisor.relay import OutboxRelay
from shared.domain.blobs import BLOB_KEY, digest
from shared.eventstore import InMemoryEventStore, NewEvent
from shared.transport.memory import InMemoryBus

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PASSAGE = "Replay folds recorded events into state. " * 12
DRAFT = "# Replay\n\nThe supervisor folds every event it recorded. " * 10


def _write(task_id: str, texts: Mapping[str, object]) -> NewEvent:
    command = WriteTask(
        workflow_id="wf-t",
        task_id=task_id,
        attempt=1,
        deadline=NOW,
        goal="explain replay",
        passages=[{"source_id": "doc.md#1", "text": PASSAGE}],  # type: ignore[list-item]
        previous_draft=DRAFT,
    ).model_dump(mode="json")
    command["passages"][0]["text"] = texts["passage"]
    command["previous_draft"] = texts["draft"]
    data = {
        "task_id": task_id,
        "agent": "writer",
        "attempt": 1,
        "deadline": NOW.isoformat(),
        "command_type": WriteTask.TYPE,
        "command": command,
    }
    return NewEvent("TaskScheduled", data)


async def _history(store: InMemoryEventStore, reference: Mapping[str, object]) -> None:
    """Texts recorded by two events, then a write command that refers to them."""
    await store.append(
        "wf-t", [NewEvent("PassagesRetrieved", {"passages": [{"text": PASSAGE}]})], 0
    )
    await store.append("wf-t", [NewEvent("DraftWritten", {"draft": DRAFT})], 1)
    await store.append("wf-t", [_write("writer-v3", reference)], 2)


def _bus() -> InMemoryBus:
    return InMemoryBus(service="supervisor", topics=[WORKFLOW_EVENTS, task_topic("writer")])


def _refs() -> dict[str, object]:
    return {"passage": {BLOB_KEY: digest(PASSAGE)}, "draft": {BLOB_KEY: digest(DRAFT)}}


async def test_a_command_by_reference_is_sent_whole() -> None:
    """The writer receives the passage and the draft in full, expanded from what the relay
    read before the command, with no extra read of the stream."""
    store = InMemoryEventStore()
    await _history(store, _refs())
    async with _bus() as bus:
        relay = OutboxRelay(store, bus, asyncio.Event())
        assert await relay.relay_batch() == 3
        [record] = bus.records(task_topic("writer"))
        sent = decode_message(WriteTask.TYPE, record.value or b"")
        assert isinstance(sent, WriteTask)
        assert sent.passages[0].text == PASSAGE
        assert sent.previous_draft == DRAFT
        assert relay.unpublishable == 0
        assert relay.texts_read == 0


async def test_a_relay_that_resumes_after_the_texts_reads_the_stream_once() -> None:
    """A relay whose checkpoint lies past the texts' events reads the stream to expand."""
    store = InMemoryEventStore()
    await _history(store, _refs())
    async with _bus() as bus:
        relay = OutboxRelay(store, bus, asyncio.Event())
        relay.position = 2  # as a relay restarted from a checkpoint after the draft
        assert await relay.relay_batch() == 1
        [record] = bus.records(task_topic("writer"))
        sent = decode_message(WriteTask.TYPE, record.value or b"")
        assert isinstance(sent, WriteTask)
        assert sent.previous_draft == DRAFT
        assert relay.texts_read == 1


async def test_a_reference_no_event_holds_is_skipped_not_sent() -> None:
    """A command referring to a text its stream never recorded is unpublishable: skipped, the
    audit copy still sent, the relay moves on."""
    store = InMemoryEventStore()
    missing = {"passage": {BLOB_KEY: digest("never recorded " * 30)}, "draft": DRAFT}
    await _history(store, missing)
    async with _bus() as bus:
        relay = OutboxRelay(store, bus, asyncio.Event())
        assert await relay.relay_batch() == 3
        assert bus.records(task_topic("writer")) == []
        assert len(bus.records(WORKFLOW_EVENTS)) == 3
        assert relay.unpublishable == 1
