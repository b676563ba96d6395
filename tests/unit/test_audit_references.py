"""Verification proves what each agent was given: a task command's references must name values
that earlier events of its stream record (shared.readside._check)."""

from __future__ import annotations

import json
from datetime import timedelta

from shared.domain.blobs import BLOB_KEY, digest
from shared.eventstore import InMemoryEventStore, NewEvent
from shared.readside.audit import export_bundle, verify_bundle, verify_store, verify_stream
from tests.unit._clock import T0, TickingClock

DRAFT = "# Replay\n\nThe supervisor folds every recorded event into the state. " * 8


def _task(value: object) -> NewEvent:
    return NewEvent("TaskScheduled", {"agent": "critic", "command": {"draft": value}})


async def _stream(referred: str) -> InMemoryEventStore:
    """wf-r: a draft, then a critic task whose command refers to ``referred``."""
    store = InMemoryEventStore(clock=TickingClock())
    await store.append("wf-r", [NewEvent("DraftWritten", {"draft": DRAFT})], 0)
    await store.append("wf-r", [_task({BLOB_KEY: digest(referred)})], 1)
    return store


async def test_references_to_recorded_values_verify() -> None:
    """A command referring to the draft an earlier event records verifies, in the store and
    in a bundle."""
    store = await _stream(DRAFT)
    assert (await verify_store(store)).ok
    lines = [line async for line in export_bundle(store, now=T0)]
    assert verify_bundle(lines).ok


async def test_a_reference_to_an_unrecorded_value_is_a_broken_link() -> None:
    """A command referring to a value no earlier event records is named at its version,
    though its hash is sound: the stream cannot say what the agent was given."""
    store = await _stream("a draft that was never recorded " * 10)
    result = await verify_stream(store, "wf-r")
    assert result.first_broken is not None
    assert result.first_broken.version == 2
    assert "no earlier event of the stream records" in result.first_broken.reason
    lines = [line async for line in export_bundle(store, now=T0)]
    broken = verify_bundle(lines).first_broken
    assert broken is not None
    assert broken.version == 2


async def test_a_bundle_cut_after_the_recorded_value_skips_the_check() -> None:
    """A --since bundle starting after the draft lacks it, so its references are not checked;
    its chain still is."""
    store = await _stream(DRAFT)
    lines = [line async for line in export_bundle(store, now=T0, since=T0 + timedelta(seconds=2))]
    assert [json.loads(line).get("version") for line in lines[2:-1]] == [2]
    result = verify_bundle(lines)
    assert result.ok
    assert result.events_checked == 1
