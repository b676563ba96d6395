"""Versioned prompts: released files never change, versions resolve, templates render."""

from __future__ import annotations

import hashlib
import tomllib

import pytest

from shared.llm.prompts import (
    AGENTS_WITH_PROMPTS,
    UnknownPromptError,
    available_versions,
    current_prompt_versions,
    load_prompt,
    lock_entries,
    prompt_files,
)

_HOW_TO_CHANGE = (
    "A released prompt must never change: replays, forks and audits name it by version and "
    "hash. To change a prompt, copy it to a new file shared/llm/prompts/<agent>/<new semver>.toml "
    "(a bigger MAJOR when its output changes shape), edit the copy, and add "
    '"<agent>/<new semver>": "<sha256 of the new file>" to shared/llm/prompts/LOCK.json '
    "(sha256sum shared/llm/prompts/<agent>/<new semver>.toml). Restore the old file as it was."
)


def test_every_prompt_file_matches_its_lock_entry() -> None:
    """A file whose bytes differ from LOCK.json changed without a version bump."""
    lock = lock_entries()
    changed = {
        name: hashlib.sha256(raw).hexdigest()
        for name, raw in prompt_files().items()
        if lock.get(name) != hashlib.sha256(raw).hexdigest()
    }
    unlocked = sorted(name for name in changed if name not in lock)
    edited = sorted(name for name in changed if name in lock)
    assert not edited, f"prompt content changed without a version bump: {edited}. {_HOW_TO_CHANGE}"
    assert not unlocked, f"prompt files missing from LOCK.json: {unlocked}. {_HOW_TO_CHANGE}"


def test_no_released_version_disappears() -> None:
    """Every version in LOCK.json still has its file: pinned workflows must find it."""
    missing = sorted(set(lock_entries()) - set(prompt_files()))
    assert missing == [], f"released prompt versions were deleted: {missing}"


def test_loaded_prompts_carry_id_version_and_the_file_hash() -> None:
    """A loaded prompt's hash is the SHA-256 of its file, the same value the lock holds."""
    lock = lock_entries()
    for agent in AGENTS_WITH_PROMPTS:
        for version in available_versions(agent):
            prompt = load_prompt(agent, version)
            assert (prompt.agent, prompt.version) == (agent, version)
            assert prompt.sha256 == lock[f"{agent}/{version}"]
            assert prompt.id == tomllib.loads(prompt.content)["id"]
            assert prompt.system.strip()
            assert prompt.template.strip()
            assert prompt.strategies


def test_current_versions_are_the_highest_stable_ones() -> None:
    """New workflows pin each agent's highest stable version; a candidate is opt-in only."""
    assert current_prompt_versions() == {
        "writer": "1.0.0",
        "critic": "1.0.0",
        "summarizer": "1.0.0",
    }
    assert available_versions("writer") == ["1.0.0", "2.0.0"]
    assert load_prompt("writer").version == "1.0.0"
    assert load_prompt("writer", "2.0.0").candidate
    assert load_prompt("writer", None) is load_prompt("writer", "1.0.0")


def test_versions_sort_as_semantic_versions() -> None:
    """Every file name is MAJOR.MINOR.PATCH, and 10.0.0 sorts after 9.0.0."""
    for agent in AGENTS_WITH_PROMPTS:
        versions = available_versions(agent)
        assert versions == sorted(versions, key=lambda v: tuple(int(x) for x in v.split(".")))


@pytest.mark.parametrize(
    ("agent", "version", "message"),
    [
        (
            "writer",
            "9.9.9",
            "no prompt version '9.9.9' for agent 'writer' (available: 1.0.0, 2.0.0)",
        ),
        ("search", None, "no prompt for agent 'search' (available: none)"),
    ],
)
def test_an_unknown_version_names_the_ones_that_exist(
    agent: str, version: str | None, message: str
) -> None:
    """Asking for a version that does not exist fails in one line listing what does."""
    with pytest.raises(UnknownPromptError) as caught:
        load_prompt(agent, version)
    assert str(caught.value) == message
    assert caught.value.retryable is False


def test_strategies_wrap_around() -> None:
    """Strategy n is strategies[n % len]: a backtrack past the last starts over."""
    v1, v2 = load_prompt("writer", "1.0.0"), load_prompt("writer", "2.0.0")
    assert [v1.strategy(n).offline for n in range(3)] == [
        "tfidf-mmr-extractive",
        "term-outline",
        "tfidf-mmr-extractive",
    ]
    assert v2.strategy(0).offline == "term-outline"
    assert v1.strategy(0).instruction == ""
    assert v1.strategy(1).instruction


def test_template_placeholders_are_filled_once() -> None:
    """Values are inserted verbatim: braces inside a goal are not expanded again."""
    prompt = load_prompt("critic")
    text = prompt.render(
        goal="Explain {x}",
        verdict="revise",
        score=0.5,
        results="- r",
        findings="- f",
        revision=0,
        draft="d",
    )
    assert text.startswith("Goal: Explain {x}\n\nVerdict: revise (score 0.50)")
