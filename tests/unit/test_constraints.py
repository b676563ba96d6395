"""Constraint validation at submit: unknown forms and nonsensical values are refused."""

from __future__ import annotations

import pytest

from shared.agents.constraints import (
    CONSTRAINT_SYNONYMS,
    KNOWN_CONSTRAINT_FORMS,
    constraint_problem,
    parse_constraints,
    unknown_constraints,
)

KNOWN = [
    "avoid: simply, just",
    'Do not mention "Java".',
    "must mention: GDPR",
    "max words: 150",
    "at least 50 words",
    "cite at least 3 sources",
]


def test_known_forms_are_accepted() -> None:
    """Every canonical form and its synonyms parse to a rule, so nothing is unknown."""
    assert unknown_constraints(KNOWN) == []
    assert constraint_problem(KNOWN) is None
    assert constraint_problem([]) is None


def test_every_advertised_form_is_understood() -> None:
    """The forms and synonyms shown to users are themselves accepted (with X and N filled in)."""
    advertised = [*KNOWN_CONSTRAINT_FORMS, *(s for v in CONSTRAINT_SYNONYMS.values() for s in v)]
    lines = [f.replace(" (N - 1)", "").replace("X", "Kafka").replace("N", "40") for f in advertised]
    assert unknown_constraints(lines) == []
    assert set(CONSTRAINT_SYNONYMS) == set(KNOWN_CONSTRAINT_FORMS)


def test_a_typo_is_unknown_and_named_in_the_problem() -> None:
    """'max word: 50' is not a word limit: the problem names it and lists the known forms."""
    assert unknown_constraints(["max word: 50", "avoid: jargon"]) == ["max word: 50"]
    assert constraint_problem(["max word: 50"]) == (
        "unknown constraint 'max word: 50'; known forms: avoid: X, must mention: X, "
        "max words: N, min words: N, min sources: N"
    )


def test_free_text_lines_are_unknown() -> None:
    """Lines the critic would only note ('cite sources', a tone) are refused, blank lines not."""
    items = ["cite sources", "  ", "use a friendly tone ", "max words: 300"]
    assert unknown_constraints(items) == ["cite sources", "use a friendly tone"]
    problem = constraint_problem(items)
    assert problem is not None
    assert problem.startswith("unknown constraints 'cite sources', 'use a friendly tone'; ")


def test_many_unknown_lines_stay_one_short_line() -> None:
    """Past three unknown lines the problem counts the rest; long lines are shortened."""
    problem = constraint_problem([f"bogus {i} " + "x" * 200 for i in range(5)])
    assert problem is not None
    assert "\n" not in problem
    assert "and 2 more" in problem
    assert len(problem) < 500  # a ShortText, e.g. a dead-letter reason


@pytest.mark.parametrize("line", ["banana bread", "avoidance of jargon", "requirements: none"])
def test_keywords_must_be_whole_words(line: str) -> None:
    """A word merely starting with a keyword ('ban', 'avoid', 'require') is not that keyword."""
    assert unknown_constraints([line]) == [line]
    assert parse_constraints([line]).banned == ()
    assert parse_constraints([line]).must_mention == ()


@pytest.mark.parametrize(
    ("items", "problem"),
    [
        (["max words: 0"], "constraint 'max words: 0' allows no words at all"),
        (["under 1 words"], "constraint 'under 1 words' allows no words at all"),
        (["avoid: ,;"], "constraint 'avoid: ,;' names no term"),
        (
            ["min words: 300", "max words: 100"],
            "min words (300) is greater than max words (100); no report can satisfy both",
        ),
        (
            ["max words: 100", "max words: 200"],
            "constraints 'max words: 100' and 'max words: 200' contradict",
        ),
        (
            ["avoid: topic", "must mention: Kafka topics"],
            "'Kafka topics' is required but contains the banned term 'topic'",
        ),
    ],
)
def test_nonsensical_values_are_a_problem(items: list[str], problem: str) -> None:
    """Limits no report can meet, or that say two things at once, are refused with a reason."""
    assert unknown_constraints(items) == []
    assert constraint_problem(items) == problem


def test_equal_repeats_are_not_a_contradiction() -> None:
    """Two phrasings of the same limit ('under 100 words', 'max words: 99') agree."""
    assert constraint_problem(["under 100 words", "max words: 99", "min words: 0"]) is None


def test_free_text_still_parses_for_recorded_workflows() -> None:
    """Parsing stays tolerant: old unknown lines land in free_text instead of raising."""
    assert parse_constraints(["cite sources"]).free_text == ("cite sources",)
