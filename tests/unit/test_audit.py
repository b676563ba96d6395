"""The hash chain's definition, and export/verify in shared.readside.audit: untouched logs
verify, and every kind of edit to a stored event or to a bundle is named at its first break."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from shared.cli import workflows
from shared.cli.app import app
from shared.eventstore import InMemoryEventStore, NewEvent, RecordedEvent, StreamSummary
from shared.eventstore.chain import ZERO_HASH, body_digest, link_hash
from shared.readside.audit import (
    VerifyResult,
    event_hash,
    export_bundle,
    verify_bundle,
    verify_store,
    verify_stream,
)
from tests.unit._clock import T0, TickingClock

Lines = list[str]
Edit = Callable[[list[RecordedEvent]], list[RecordedEvent]]
runner = CliRunner()


def _meta(actor: str) -> dict[str, Any]:
    trace = {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    return {"actor": actor, "correlation_id": "wf-a", "trace_context": trace, "note": "x"}


async def _fill(store: InMemoryEventStore) -> None:
    """wf-a: four events over three appends; wf-b: two; wf-a's last append comes last."""
    await store.append("wf-a", [NewEvent("Started", {"n": 1}, metadata=_meta("cli"))], 0)
    await store.append("wf-b", [NewEvent("Started", {"n": 1}), NewEvent("Done", {"é": "ü"})], 0)
    second = [NewEvent("Drafted", {"n": 2}, metadata=_meta("writer"))]
    await store.append("wf-a", [*second, NewEvent("Critiqued", {"n": 3})], 1)
    await store.append("wf-a", [NewEvent("Done", {"n": 4, "nested": {"b": [1.5, None]}})], 3)


@pytest.fixture
async def store() -> InMemoryEventStore:
    """A store holding wf-a (versions 1-4) and wf-b (1-2), one second per append."""
    store = InMemoryEventStore(clock=TickingClock())
    await _fill(store)
    return store


async def _export(store: InMemoryEventStore, **scope: Any) -> Lines:
    return [line async for line in export_bundle(store, now=T0, **scope)]


@pytest.fixture
async def bundle(store: InMemoryEventStore) -> Lines:
    """Everything in store, exported: header, wf-a's head and events, wf-b's, end."""
    return await _export(store)


def _index(lines: Lines, stream_id: str, version: int | None = None) -> int:
    """The line of an event (or, with no version, of the stream record)."""
    kind = "stream" if version is None else "event"
    for i, line in enumerate(lines):
        record = json.loads(line)
        same = record["record"] == kind and record["stream_id"] == stream_id
        if same and (version is None or record["version"] == version):
            return i
    raise LookupError((stream_id, version))


def _edit(lines: Lines, at: int, old: str, new: str, *, every: bool = False) -> Lines:
    """Replace ``old`` (its first occurrence unless ``every``) on line ``at``."""
    assert old in lines[at], lines[at]
    edited = lines[at].replace(old, new, -1 if every else 1)
    return [*lines[:at], edited, *lines[at + 1 :]]


def _broken(result: VerifyResult) -> tuple[str | None, int | None, int | None, str]:
    assert result.first_broken is not None, result
    b = result.first_broken
    return b.stream_id, b.version, b.line, b.reason


# --- the chain's definition -----------------------------------------------------------------


def test_link_hash_is_pinned_to_its_byte_definition() -> None:
    """A link is sha256(prev ‖ sha256(canonical JSON) ‖ int64 big-endian µs): pinned value,
    and the same bytes built by hand."""
    fields: dict[str, Any] = {
        "stream_id": "wf-1",
        "version": 1,
        "type": "Started",
        "schema_version": 1,
        "event_id": "e-1",
        "data": {"b": "ü", "a": [1, 2.5, None]},
        "metadata": {"actor": "cli"},
    }
    micros = 1_767_225_600_000_001  # 2026-01-01T00:00:00.000001Z
    by_hand = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    assert by_hand.startswith(b'{"data":{"a":[1,2.5,null],"b":"\\u00fc"},"event_id":"e-1"')
    link = hashlib.sha256(
        bytes(32) + hashlib.sha256(by_hand).digest() + micros.to_bytes(8, "big")
    ).hexdigest()
    assert link_hash(ZERO_HASH, body_digest(**fields), micros) == link
    assert link == "f4dbc3d0b43d9592a00fcc07a6af74ffa3735ecf2067b187cd4616aa1e3da990"


async def test_recorded_events_recompute(store: InMemoryEventStore) -> None:
    """event_hash recomputes every stored hash from its predecessor's."""
    prev = ZERO_HASH
    for event in await store.read("wf-a"):
        assert event.hash == event_hash(prev, event)
        prev = event.hash


# --- verifying the store --------------------------------------------------------------------


async def test_untouched_store_verifies(store: InMemoryEventStore) -> None:
    """Every stream and each one alone verify, with every event counted."""
    assert (await verify_store(store, page=1)).as_dict() == {
        "ok": True,
        "events_checked": 6,
        "legacy_events": 0,
        "streams_checked": 2,
        "first_broken": None,
    }
    one = await verify_stream(store, "wf-a", page=3)
    assert (one.ok, one.events_checked, one.streams_checked) == (True, 4, 1)
    with pytest.raises(LookupError):
        await verify_stream(store, "nope")


class _Doctored(InMemoryEventStore):
    """Reads through ``edit``: the store as someone who changed its rows left it.

    ``move_head``: the head follows the edited events (a migration did it, not an attacker).
    """

    def __init__(self, edit: Edit, *, move_head: bool = False) -> None:
        super().__init__(clock=TickingClock())
        self._doctor = edit
        self._move_head = move_head

    async def read(
        self, stream_id: str, *, after_version: int = 0, up_to_version: int | None = None
    ) -> list[RecordedEvent]:
        events = self._doctor(await super().read(stream_id))
        upper = up_to_version or 10**9
        return [e for e in events if after_version < e.version <= upper]

    async def _head(self, head: StreamSummary) -> StreamSummary:
        if not self._move_head:
            return head
        return replace(head, last_hash=(await self.read(head.stream_id))[-1].hash)

    async def stream_head(self, stream_id: str) -> StreamSummary | None:
        head = await super().stream_head(stream_id)
        return None if head is None else await self._head(head)

    async def stream_heads(self, after: str = "", limit: int = 1000) -> list[StreamSummary]:
        return [await self._head(h) for h in await super().stream_heads(after, limit)]


def _in(stream_id: str, version: int, change: Callable[[RecordedEvent], Any]) -> Edit:
    """An edit of one event (a change returning None deletes it)."""

    def edit(events: list[RecordedEvent]) -> list[RecordedEvent]:
        edited = [
            change(e) if (e.stream_id, e.version) == (stream_id, version) else e for e in events
        ]
        return [e for e in edited if e is not None]

    return edit


def _legacy(upto: int) -> Edit:
    """Events 1..upto as written before hashes (NULL), the rest chained from the zero hash:
    what a migrated database holds."""

    def edit(events: list[RecordedEvent]) -> list[RecordedEvent]:
        prev, out = ZERO_HASH, []
        for event in events:
            if event.version <= upto:
                out.append(replace(event, hash=None))
            else:
                prev = event_hash(prev, event)
                out.append(replace(event, hash=prev))
        return out

    return edit


@pytest.mark.parametrize(
    ("edit", "version", "reason"),
    [
        (_in("wf-a", 2, lambda e: replace(e, data={"n": 3})), 2, "does not match"),
        (_in("wf-a", 2, lambda e: replace(e, metadata={**e.metadata, "note": "y"})), 2, "match"),
        (_in("wf-a", 3, lambda e: replace(e, type="Approved")), 3, "does not match"),
        (_in("wf-a", 3, lambda e: replace(e, schema_version=2)), 3, "does not match"),
        (_in("wf-a", 1, lambda e: replace(e, event_id="other")), 1, "does not match"),
        (
            _in("wf-a", 4, lambda e: replace(e, recorded_at=e.recorded_at + timedelta(0, 0, 1))),
            4,
            "match",
        ),
        (_in("wf-a", 2, lambda e: replace(e, hash="0" * 64)), 2, "does not match"),
        (_in("wf-a", 2, lambda e: None), 3, "version 3 where version 2 was expected"),
        (
            _in("wf-a", 4, lambda e: None),
            4,
            "the head is at version 4, the last event is version 3",
        ),
        (_in("wf-a", 3, lambda e: replace(e, hash=None)), 3, "no hash, though earlier"),
    ],
    ids=["data", "metadata", "type", "schema", "event-id", "time", "hash", "gap", "tail", "null"],
)
async def test_edited_store_names_the_event(edit: Edit, version: int, reason: str) -> None:
    """A changed field, a deleted or an unhashed event is named: stream, version, why."""
    store = _Doctored(edit)
    await _fill(store)
    result = await verify_store(store)
    assert _broken(result)[:2] == ("wf-a", version)
    assert reason in _broken(result)[3]
    assert (await verify_stream(store, "wf-b")).ok


async def test_legacy_events_verify_and_are_counted() -> None:
    """Unhashed events before the chain count as legacy; the chain after them starts at zero,
    in the store and in its bundle."""
    store = _Doctored(_legacy(upto=2), move_head=True)
    await _fill(store)
    result = await verify_store(store)
    assert (result.ok, result.events_checked, result.legacy_events) == (True, 6, 4)
    lines = await _export(store)
    assert json.loads(lines[_index(lines, "wf-a", 2)])["prev_hash"] is None
    assert json.loads(lines[_index(lines, "wf-a", 3)])["prev_hash"] == ZERO_HASH
    assert verify_bundle(lines).as_dict() == result.as_dict()


# --- bundles ----------------------------------------------------------------------------------


def test_bundle_layout(bundle: Lines) -> None:
    """Header, then per stream (in id order) its head and its events, then the counts."""
    kinds = [(r["record"], r.get("stream_id"), r.get("version")) for r in map(json.loads, bundle)]
    assert kinds == [
        ("header", None, 1),
        ("stream", "wf-a", 4),
        *(("event", "wf-a", v) for v in range(1, 5)),
        ("stream", "wf-b", 2),
        ("event", "wf-b", 1),
        ("event", "wf-b", 2),
        ("end", None, None),
    ]
    event = json.loads(bundle[2])
    assert event["provenance"] == {
        "actor": "cli",
        "causation_id": None,
        "correlation_id": "wf-a",
        "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    }
    assert (event["prev_hash"], event["recorded_at"]) == (
        ZERO_HASH,
        "2026-01-01T00:00:01.000000+00:00",
    )
    assert json.loads(bundle[-1]) == {"record": "end", "streams": 2, "events": 6}


async def test_untouched_bundle_verifies(store: InMemoryEventStore, bundle: Lines) -> None:
    """A bundle verifies offline as text or as bytes, with the store's counts."""
    expected = (await verify_store(store)).as_dict()
    assert verify_bundle(bundle).as_dict() == expected
    assert verify_bundle(line.encode() for line in bundle).as_dict() == expected
    assert verify_bundle(await _export(store, stream_id="wf-b")).events_checked == 2


def _swap(lines: Lines, i: int, j: int) -> Lines:
    out = list(lines)
    out[i], out[j] = out[j], out[i]
    return out


def _drop(lines: Lines, i: int) -> Lines:
    return [*lines[:i], *lines[i + 1 :]]


def _rechain(lines: Lines, stream_id: str, *, head: bool = False) -> Lines:
    """Recompute every hash and prev_hash of a stream (and, with ``head``, its head's last
    hash) from its lines as they now read: what a careful forger does after an edit."""
    out, prev, at_head = list(lines), ZERO_HASH, _index(lines, stream_id)
    for i, line in enumerate(lines):
        record = json.loads(line)
        if record["record"] != "event" or record["stream_id"] != stream_id:
            continue
        fields = ("position", "stream_id", "version", "type", "schema_version", "event_id")
        event = RecordedEvent(
            **{k: record[k] for k in fields},
            data=record["data"],
            metadata=record["metadata"],
            recorded_at=datetime.fromisoformat(record["recorded_at"]),
        )
        record["prev_hash"], record["hash"] = prev, event_hash(prev, event)
        prev = record["hash"]
        out[i] = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
    if head:
        record = json.loads(lines[at_head])
        out[at_head] = json.dumps({**record, "last_hash": prev}, separators=(",", ":")) + "\n"
    return out


def _only(lines: Lines, stream_id: str, upto: int) -> Lines:
    """``_rechain`` applied to the lines of a stream's first ``upto`` versions."""
    cut = _index(lines, stream_id, upto) + 1
    return _rechain(lines[:cut], stream_id) + lines[cut:]


# Lines (0-based) of the fixture bundle: 0 header, 1 wf-a's head, 2-5 its versions 1-4,
# 6 wf-b's head, 7-8 its versions 1-2, 9 end. A broken link names lines 1-based.
_A2, _A3, _A4, _B = 3, 4, 5, 6
_EDITS: dict[str, tuple[Callable[[Lines], Lines], tuple[str | None, int | None, int], str]] = {
    "data": (lambda b: _edit(b, _A2, '"n":2', '"n":3'), ("wf-a", 2, 4), "does not match"),
    "metadata": (lambda b: _edit(b, _A2, '"note":"x"', '"note":"y"'), ("wf-a", 2, 4), "not match"),
    "metadata actor alone": (
        lambda b: _edit(b, _A2, '"actor":"writer"', '"actor":"critic"'),
        ("wf-a", 2, 4),
        "provenance does not match",
    ),
    "actor and provenance": (
        lambda b: _edit(b, _A2, '"writer"', '"critic"', every=True),
        ("wf-a", 2, 4),
        "does not match",
    ),
    "type": (lambda b: _edit(b, _A3, '"Critiqued"', '"Approved"'), ("wf-a", 3, 5), "not match"),
    "recorded_at": (lambda b: _edit(b, _A4, ".000000+", ".000001+"), ("wf-a", 4, 6), "not match"),
    "version": (
        lambda b: _edit(b, _A3, '"version":3', '"version":2'),
        ("wf-a", 2, 5),
        "version 2 where",
    ),
    "swapped events": (lambda b: _swap(b, _A2, _A3), ("wf-a", 3, 4), "version 3 where version 2"),
    "deleted event": (lambda b: _drop(b, _A2), ("wf-a", 3, 4), "version 3 where version 2"),
    "deleted last event": (lambda b: _drop(b, _A4), ("wf-a", 4, 6), "head is at version 4"),
    "deleted stream record": (lambda b: _drop(b, _B), ("wf-b", 1, 7), "inside stream 'wf-a'"),
    "swapped streams": (lambda b: [b[0], *b[6:9], *b[1:6], b[9]], ("wf-a", 1, 5), "out of order"),
    "stream twice": (lambda b: [*b[:9], *b[6:]], ("wf-b", 1, 10), "out of order"),
    "deleted header": (lambda b: b[1:], (None, None, 1), "not a bundle header"),
    "deleted end": (lambda b: b[:-1], ("wf-b", 3, 10), "cut short"),
    "end count": (lambda b: _edit(b, 9, '"events":6', '"events":5'), (None, None, 10), "counts"),
    "line after end": (lambda b: [*b, b[-1]], (None, None, 11), "after the end record"),
    "extra key": (lambda b: _edit(b, _A2, '"data"', '"x":1,"data"'), ("wf-a", 2, 4), "keys: x"),
    "key twice": (lambda b: _edit(b, _A2, '"data"', '"type":"X","data"'), ("wf-a", 2, 4), "twice"),
    "not JSON": (lambda b: _edit(b, _A2, "{", "["), ("wf-a", 2, 4), "not JSON"),
    "NaN": (lambda b: _edit(b, _A2, '"n":2', '"n":NaN'), ("wf-a", 2, 4), "NaN is not JSON"),
    "hash not hex": (lambda b: _edit(b, _A2, '"hash":"', '"hash":"X'), ("wf-a", 2, 4), "hex"),
    "forged link": (
        lambda b: _only(_edit(b, _A2, '"n":2', '"n":3'), "wf-a", 2),
        ("wf-a", 3, 5),
        "prev_hash is not version 2's hash",
    ),
    "forged chain": (
        lambda b: _rechain(_edit(b, _A2, '"n":2', '"n":3'), "wf-a"),
        ("wf-a", 4, 7),
        "hash is not the one the head keeps",
    ),
}


@pytest.mark.parametrize("name", _EDITS)
def test_edited_bundle_names_the_first_broken_link(bundle: Lines, name: str) -> None:
    """Each edit of a bundle is caught where it first shows: stream, version, line, why."""
    edit, (stream_id, version, line), reason = _EDITS[name]
    broken = _broken(verify_bundle(edit(bundle)))
    assert broken[:3] == (stream_id, version, line)
    assert reason in broken[3]


def test_a_byte_that_is_not_utf8_is_a_broken_line(bundle: Lines) -> None:
    """One byte of a line replaced by an invalid UTF-8 byte: that line is named."""
    raw = [line.encode() for line in bundle]
    raw[_A3] = raw[_A3].replace(b"Critiqued", b"Crit\xffqued")
    byte = raw[_A3].index(b"\xff") + 1
    assert _broken(verify_bundle(raw)) == ("wf-a", 3, 5, f"not UTF-8 (byte {byte})")


def test_a_forger_who_rewrites_the_head_too_needs_the_heads_anchor(
    bundle: Lines, store: InMemoryEventStore
) -> None:
    """A bundle rewritten consistently, head included, verifies on its own: only comparing
    its heads with the database's (or a published copy) shows the change (docs/audit.md)."""
    forged = _rechain(_edit(bundle, _A2, '"n":2', '"n":3'), "wf-a", head=True)
    assert verify_bundle(forged).ok
    assert json.loads(forged[1])["last_hash"] != json.loads(bundle[1])["last_hash"]


# --- since -------------------------------------------------------------------------------------


async def test_since_exports_later_events_anchored_to_their_predecessor(
    store: InMemoryEventStore,
) -> None:
    """With since, each stream starts at its first later event, which states its
    predecessor's hash; streams with nothing later are left out; the bundle verifies."""
    since = T0 + timedelta(seconds=3)  # wf-a's second append; wf-b was written at +2 s
    lines = await _export(store, since=since)
    records = [json.loads(line) for line in lines]
    assert [(r["record"], r.get("version")) for r in records[1:]] == [
        ("stream", 4),
        ("event", 2),
        ("event", 3),
        ("event", 4),
        ("end", None),
    ]
    [a1] = await store.read("wf-a", up_to_version=1)
    assert records[2]["prev_hash"] == a1.hash
    assert verify_bundle(lines).as_dict()["events_checked"] == 3
    assert _broken(verify_bundle(_edit(lines, 3, '"n":3', '"n":4')))[:3] == ("wf-a", 3, 4)
    early = _edit(
        lines, 2, '"recorded_at":"2026-01-01T00:00:03', '"recorded_at":"2026-01-01T00:00:02'
    )
    assert "before the bundle's since" in _broken(verify_bundle(early))[3]


# --- the CLI -----------------------------------------------------------------------------------


@pytest.fixture
def cli_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> InMemoryEventStore:
    """The store the CLI opens (the fixture's streams), in a folder with no stack."""
    for name in list(os.environ):
        if name.startswith("AGENTLOG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    store = InMemoryEventStore(clock=TickingClock())
    asyncio.run(_fill(store))
    monkeypatch.setenv("AGENTLOG_DATABASE_URL", "postgresql://unused@127.0.0.1:1/x")
    monkeypatch.setattr(workflows, "open_store", lambda settings: store)
    return store


def _error_line(result: Result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), result.output
    return lines[0]


def test_cli_export_then_verify_the_file_offline(
    cli_store: InMemoryEventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`export wf-a -o FILE` (a prefix is enough) writes a bundle that `verify --file` passes
    with no database configured; one changed byte makes it exit 1 naming the link."""
    path = tmp_path / "audit.jsonl"
    exported = runner.invoke(app, ["export", "wf-a", "-o", str(path)])
    assert exported.exit_code == 0, exported.output
    assert "exported 4 events of 1 workflows" in exported.output
    monkeypatch.delenv("AGENTLOG_DATABASE_URL")
    checked = runner.invoke(app, ["verify", "--file", str(path)])
    assert (checked.exit_code, checked.output) == (0, "ok: 4 events in 1 workflows\n")
    path.write_bytes(path.read_bytes().replace(b'"n":2', b'"n":7'))
    broken = runner.invoke(app, ["verify", "--file", str(path)])
    assert broken.exit_code == 1
    assert broken.output.startswith("broken: workflow wf-a, version 2, position 4, line 4: the ")


def test_cli_verify_the_database(cli_store: InMemoryEventStore) -> None:
    """`verify` (every workflow) and `verify WF --json` check the store."""
    every = runner.invoke(app, ["verify"])
    assert (every.exit_code, every.output) == (0, "ok: 6 events in 2 workflows\n")
    one = runner.invoke(app, ["verify", "wf-b", "--json"])
    assert one.exit_code == 0
    assert json.loads(one.output)["events_checked"] == 2


def test_cli_export_all_to_stdout(cli_store: InMemoryEventStore) -> None:
    """`export --all --since T` prints the bundle, which verifies."""
    result = runner.invoke(app, ["export", "--all", "--since", "2026-01-01T00:00:02"])
    assert result.exit_code == 0
    lines = result.output.splitlines(keepends=True)
    assert verify_bundle(lines).events_checked == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export"], "name a workflow or give --all"),
        (["export", "wf-a", "--all"], "name a workflow or give --all"),
        (["export", "--all", "--since", "yesterday"], "not an ISO 8601 time"),
        (["export", "--all", "-o", "no/such/dir/x.jsonl"], "cannot write"),
        (["export", "wf-"], "matches several workflows"),
        (["verify", "wf-a", "--all"], "give one of"),
        (["verify", "--file", "missing.jsonl"], "cannot read missing.jsonl"),
        (["verify", "bad id!"], "invalid workflow id"),
    ],
)
def test_cli_usage_errors_are_one_line_exit_2(
    cli_store: InMemoryEventStore, args: list[str], message: str
) -> None:
    """Wrong input ends in one error line and exit 2, never a traceback."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in _error_line(result)


def test_cli_unknown_workflow_is_exit_1(cli_store: InMemoryEventStore) -> None:
    """A workflow the store does not hold: one line, exit 1."""
    result = runner.invoke(app, ["verify", "wf-z"])
    assert result.exit_code == 1
    assert "no workflow 'wf-z'" in _error_line(result)


# --- the reference verifier in docs/audit.md -------------------------------------------------


def _reference_verifier(tmp_path: Path) -> Path:
    doc = (Path(__file__).parents[2] / "docs" / "audit.md").read_text("utf-8")
    [code] = [b for b in re.findall(r"```python\n(.*?)```", doc, re.DOTALL) if "def verify(" in b]
    script = tmp_path / "verify_bundle.py"
    script.write_text(code, "utf-8")
    return script


async def _reference_cases() -> dict[str, Lines]:
    """Full, --since and legacy bundles, and edited copies of the full one."""
    store, legacy = (
        InMemoryEventStore(clock=TickingClock()),
        _Doctored(_legacy(upto=2), move_head=True),
    )
    await _fill(store)
    await _fill(legacy)
    full = await _export(store)
    edits = ("data", "swapped events", "deleted last event", "swapped streams", "deleted end")
    return {
        "full": full,
        "since": await _export(store, since=T0 + timedelta(seconds=3)),
        "legacy": await _export(legacy),
        **{name: _EDITS[name][0](full) for name in (*edits, "forged link", "forged chain")},
    }


def test_the_docs_stdlib_verifier_agrees(tmp_path: Path) -> None:
    """The standard-library script in docs/audit.md passes full, --since and legacy bundles
    and fails edited ones, as verify_bundle does."""
    script = _reference_verifier(tmp_path)
    for name, lines in asyncio.run(_reference_cases()).items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(lines), "utf-8")
        run = subprocess.run(
            [sys.executable, "-I", str(script), str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        holds = verify_bundle(lines).ok
        assert (name, run.returncode) == (name, 0 if holds else 1), run.stdout + run.stderr
        assert (run.stdout == "ok\n") == holds
