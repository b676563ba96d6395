"""Commands by content reference: compacting and expanding long texts (shared.domain.blobs)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from shared.domain.blobs import (
    BLOB_KEY,
    MIN_CHARS,
    Recorded,
    UnresolvedBlobError,
    collect,
    compact,
    digest,
    expand,
    has_blobs,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
LONG = "Event sourcing keeps every fact. " * 20
OTHER = "A draft that nobody recorded yet. " * 20


def test_digest_is_the_sha256_of_the_canonical_json() -> None:
    """A reference key is the SHA-256 of the value's canonical JSON (sorted keys, no spaces,
    non-ASCII escaped), in hex: the form the hash chain uses."""
    text = "naïve " * 60
    canonical = json.dumps(text, ensure_ascii=True)
    assert digest(text) == hashlib.sha256(canonical.encode("ascii")).hexdigest()
    passage = {"text": text, "source_id": "a.md#1"}
    canonical = '{"source_id":"a.md#1","text":' + json.dumps(text) + "}"
    assert digest(passage) == hashlib.sha256(canonical.encode("ascii")).hexdigest()


def test_only_long_recorded_values_become_references() -> None:
    """Recorded values of MIN_CHARS or more become references; short or unrecorded ones stay."""
    short = "x" * (MIN_CHARS - 1)
    command = {"passages": [{"text": LONG}, {"text": short}], "draft": OTHER, "n": 3}
    compacted = compact(command, Recorded.of([LONG, short]))
    assert compacted == {
        "passages": [{"text": {BLOB_KEY: digest(LONG)}}, {"text": short}],
        "draft": OTHER,
        "n": 3,
    }
    assert has_blobs(compacted)
    assert not has_blobs(command)


def test_a_recorded_object_is_referred_to_whole() -> None:
    """A recorded passage object becomes one reference, not one per long string in it; an
    unrecorded list of recorded passages becomes a list of references."""
    first = {"source_id": "a.md#1", "text": LONG, "snippet": OTHER}
    second = {"source_id": "b.md#2", "text": OTHER, "snippet": ""}
    kept = [first, second]
    assert compact({"passages": kept}, Recorded.of([kept]))["passages"] == {BLOB_KEY: digest(kept)}
    compacted = compact({"passages": [second]}, Recorded.of([first, second, LONG]))
    assert compacted == {"passages": [{BLOB_KEY: digest(second)}]}


def test_expanding_gives_back_the_exact_command() -> None:
    """A compacted command expands, with the texts collected from events, to the original."""
    command = {"goal": "g", "items": [{"text": LONG}, {"text": OTHER}], "previous_draft": LONG}
    texts: dict[str, object] = {}
    collect({"passages": [{"text": LONG}], "draft": OTHER}, texts)
    assert expand(compact(command, Recorded.of([LONG, OTHER])), texts) == command


def test_an_equal_value_with_other_json_is_not_referred_to() -> None:
    """A command value equal to a recorded one in Python but not in JSON (1 == 1.0) stays
    inline: its reference could not name the recorded text."""
    recorded = {"source_id": "a.md#1", "score": 1.0, "text": LONG}
    sent = {"source_id": "a.md#1", "score": 1, "text": OTHER}
    same = {**sent, "text": LONG}
    assert compact({"passage": same}, Recorded.of([recorded])) == {
        "passage": {"source_id": "a.md#1", "score": 1, "text": LONG}
    }
    assert compact({"passage": dict(recorded)}, Recorded.of([recorded])) == {
        "passage": {BLOB_KEY: digest(recorded)}
    }


def test_a_reference_no_event_records_is_refused() -> None:
    """Expanding a reference whose text was never collected raises, naming no text."""
    with pytest.raises(UnresolvedBlobError):
        expand({"draft": {BLOB_KEY: digest(LONG)}}, {})


def test_objects_that_only_look_like_references_are_left_alone() -> None:
    """A dict with more keys than $blob, or a value that is not a digest, is plain data."""
    data = {"a": {BLOB_KEY: "not-a-digest"}, "b": {BLOB_KEY: digest(LONG), "extra": 1}}
    assert not has_blobs(data)
    assert expand(data, {}) == data


def _commands(path: Path) -> list[tuple[dict[str, object], dict[str, object]]]:
    """Each command of the file with the values of its own stream's events (a fork's too)."""
    texts: dict[str, dict[str, object]] = {}
    lines = [json.loads(raw) for raw in path.read_text().splitlines()]
    for line in lines:
        collect(line["data"], texts.setdefault(line["stream_id"], {}))
    return [
        (texts[line["stream_id"]], line["data"]["command"])
        for line in lines
        if line["type"] == "TaskScheduled"
    ]


@pytest.mark.parametrize("scenario", ["revise_and_compact", "forked"])
def test_today_s_commands_expand_to_the_ones_recorded_whole(scenario: str) -> None:
    """Every command of a golden history, expanded from its own stream, equals the command
    the same scenario recorded whole before references existed."""
    by_reference = _commands(GOLDEN / f"{scenario}.jsonl")
    whole = [command for _, command in _commands(GOLDEN / "whole_commands" / f"{scenario}.jsonl")]
    assert any(has_blobs(command) for _, command in by_reference)
    assert [expand(command, texts) for texts, command in by_reference] == whole
    assert len(json.dumps([c for _, c in by_reference])) < len(json.dumps(whole))
