"""Waiting for an outcome wakes on the workflow's appends and reads only what is new."""

from __future__ import annotations

import asyncio
import json

import pytest

from shared.commands import WaitTimeoutError, wait_for_completion
from shared.eventstore import InMemoryEventStore, NewEvent, RecordedEvent
from tests.unit.test_readside import GOLDEN

_WORKFLOW = "wf-golden-revise"


class _ReadSpy(InMemoryEventStore):
    """Remembers where each read of a stream started."""

    def __init__(self) -> None:
        super().__init__()
        self.after: list[int] = []

    async def read(
        self, stream_id: str, *, after_version: int = 0, up_to_version: int | None = None
    ) -> list[RecordedEvent]:
        self.after.append(after_version)
        return await super().read(
            stream_id, after_version=after_version, up_to_version=up_to_version
        )


def _golden_events() -> list[NewEvent]:
    lines = [
        json.loads(raw) for raw in (GOLDEN / "revise_and_compact.jsonl").read_text().splitlines()
    ]
    return [
        NewEvent(line["type"], line["data"], line["schema_version"], metadata=line["metadata"])
        for line in lines
    ]


async def _record_slowly(store: InMemoryEventStore, events: list[NewEvent]) -> None:
    for version, event in enumerate(events):
        await store.append(_WORKFLOW, [event], version)
        await asyncio.sleep(0.01)


async def test_the_wait_ends_on_the_ending_append_not_at_the_next_poll() -> None:
    """With a one-minute poll, the completion still arrives as soon as it is recorded."""
    store = _ReadSpy()
    writer = asyncio.create_task(_record_slowly(store, _golden_events()))
    completion = await asyncio.wait_for(
        wait_for_completion(store, _WORKFLOW, timeout_s=30, poll_s=60), 10
    )
    await writer
    assert (completion.workflow_id, completion.outcome) == (_WORKFLOW, "completed")
    # Each read starts where the last one ended: none goes back over what was read.
    assert store.after == sorted(store.after)
    assert len(set(store.after)) == len(store.after)


async def test_a_finished_workflow_answers_at_once() -> None:
    """A workflow that already ended is answered from the first read."""
    store = _ReadSpy()
    for version, event in enumerate(_golden_events()):
        await store.append(_WORKFLOW, [event], version)
    completion = await wait_for_completion(store, _WORKFLOW, timeout_s=5, poll_s=60)
    assert completion.outcome == "completed"
    assert store.after == [0]


async def test_an_unfinished_workflow_times_out() -> None:
    """A workflow that does not end in time raises WaitTimeoutError after the timeout."""
    store = InMemoryEventStore()
    await store.append(_WORKFLOW, _golden_events()[:3], 0)
    with pytest.raises(WaitTimeoutError, match=_WORKFLOW):
        await wait_for_completion(store, _WORKFLOW, timeout_s=0.2, poll_s=0.05)
