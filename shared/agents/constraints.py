"""Free-text goal constraints parsed into rules the critic can check.

Recognised forms (case-insensitive, trailing period ignored; a list value may be separated by
commas or semicolons, quotes are stripped):

- banned:       ``avoid: X``, ``banned: X``, ``ban: X``, ``do not mention X``, ``don't use X``
- required:     ``must mention: X``, ``must include: X``, ``mention: X``, ``required: X``
- max words:    ``max words: N``, ``maximum N words``, ``at most N words``,
  ``no more than N words``; ``under N words``, ``fewer than N words``, ``less than N words``
  mean at most N - 1
- min words:    ``min words: N``, ``at least N words``, ``no fewer than N words``
- min sources:  ``min sources: N``, ``at least N sources``, ``cite at least N sources``

Anything else is kept verbatim in ``free_text``. Submitting such a line is refused
(``constraint_problem``): a limit the critic cannot check would be silently ignored, and the
report would ship without it. The critic still reads ``free_text`` as informational only, so
workflows recorded before the refusal replay unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from shared.llm.text import contains_term

__all__ = [
    "CONSTRAINT_SYNONYMS",
    "KNOWN_CONSTRAINT_FORMS",
    "Constraints",
    "constraint_problem",
    "parse_constraints",
    "unknown_constraints",
]

KNOWN_CONSTRAINT_FORMS: tuple[str, ...] = (
    "avoid: X",
    "must mention: X",
    "max words: N",
    "min words: N",
    "min sources: N",
)
# Other phrasings each canonical form accepts, for help texts (the module docstring has them all).
CONSTRAINT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "avoid: X": ("banned: X", "do not mention X", "don't use X", "never use X"),
    "must mention: X": ("must include: X", "mention: X", "required: X"),
    "max words: N": ("at most N words", "no more than N words", "under N words (N - 1)"),
    "min words: N": ("at least N words", "no fewer than N words"),
    "min sources: N": ("at least N sources", "cite at least N sources"),
}
_MAX_QUOTED = 80  # a problem line quotes user input; keep it one readable line
_MAX_LISTED = 3

_BANNED = re.compile(
    r"^(?:avoid|banned|ban|forbidden|never\s+use|do\s+not\s+use|don'?t\s+use|"
    r"do\s+not\s+mention|don'?t\s+mention|never\s+mention)\b\s*[:=\-]?\s*(?P<value>.+)$",
    re.IGNORECASE,
)
_REQUIRED = re.compile(
    r"^(?:must\s+mention|must\s+include|must\s+cover|mention|required?)\b\s*[:=\-]?\s*"
    r"(?P<value>.+)$",
    re.IGNORECASE,
)
_QUOTES = "\"'`\u201c\u201d\u2018\u2019"
_N = r"(\d{1,6})"
_MAX_WORDS = re.compile(
    rf"^(?:(?:max(?:imum)?\s+words|word\s+limit)\s*[:=]?\s*{_N}|"
    rf"(?:max(?:imum)?|at\s+most|no\s+more\s+than|up\s+to)\s+{_N}\s+words)$",
    re.IGNORECASE,
)
_BELOW_WORDS = re.compile(rf"^(?:under|fewer\s+than|less\s+than|below)\s+{_N}\s+words$", re.I)
_MIN_WORDS = re.compile(
    rf"^(?:(?:min(?:imum)?\s+words)\s*[:=]?\s*{_N}|"
    rf"(?:min(?:imum)?|at\s+least|no\s+fewer\s+than|no\s+less\s+than)\s+{_N}\s+words)$",
    re.IGNORECASE,
)
_MIN_SOURCES = re.compile(
    rf"^(?:(?:min(?:imum)?\s+sources)\s*[:=]?\s*{_N}|"
    rf"(?:cite\s+)?(?:at\s+least|min(?:imum)?)\s+{_N}\s+(?:distinct\s+)?sources)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Constraints:
    """Structured constraints; ``None`` limits mean "use the rubric's default"."""

    banned: tuple[str, ...] = ()
    must_mention: tuple[str, ...] = ()
    max_words: int | None = None
    min_words: int | None = None
    min_sources: int | None = None
    free_text: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Rule:
    """One constraint line read: its kind and either terms or a number (free text: neither)."""

    kind: str  # banned, required, max_words, min_words, min_sources or free
    line: str
    terms: tuple[str, ...] = ()
    number: int = 0


def _read(item: str) -> _Rule | None:
    """The rule one constraint line states; ``None`` for a blank line."""
    line = " ".join(item.split()).rstrip(".")
    if not line:
        return None
    if (n := _number(_MAX_WORDS, line)) is not None:
        return _Rule("max_words", line, number=n)
    if (n := _number(_BELOW_WORDS, line)) is not None:
        return _Rule("max_words", line, number=max(n - 1, 0))
    if (n := _number(_MIN_WORDS, line)) is not None:
        return _Rule("min_words", line, number=n)
    if (n := _number(_MIN_SOURCES, line)) is not None:
        return _Rule("min_sources", line, number=n)
    if found := _BANNED.match(line):
        return _Rule("banned", line, terms=tuple(_terms(found.group("value"))))
    if found := _REQUIRED.match(line):
        return _Rule("required", line, terms=tuple(_terms(found.group("value"))))
    return _Rule("free", line)


def _rules(items: Sequence[str]) -> list[_Rule]:
    return [rule for item in items if (rule := _read(item)) is not None]


def parse_constraints(items: Sequence[str]) -> Constraints:
    """Parse each constraint line; the last limit of a kind wins, terms accumulate in order."""
    rules = _rules(items)
    limits = {rule.kind: rule.number for rule in rules if rule.kind.endswith(("words", "sources"))}
    return Constraints(
        banned=tuple(dict.fromkeys(t for r in rules if r.kind == "banned" for t in r.terms)),
        must_mention=tuple(
            dict.fromkeys(t for r in rules if r.kind == "required" for t in r.terms)
        ),
        max_words=limits.get("max_words"),
        min_words=limits.get("min_words"),
        min_sources=limits.get("min_sources"),
        free_text=tuple(rule.line for rule in rules if rule.kind == "free"),
    )


def unknown_constraints(items: Sequence[str]) -> list[str]:
    """The constraint lines (as given, trimmed) matching no known form; blank lines are ignored."""
    return [item.strip() for item in items if (rule := _read(item)) and rule.kind == "free"]


def constraint_problem(items: Sequence[str]) -> str | None:
    """One line saying why these constraints cannot be honoured, or ``None`` when they can.

    Checked in order: unknown forms, a form without a term, a word limit of 0, two different
    values for one limit, min words above max words, a required term that is also banned.
    """
    unknown = unknown_constraints(items)
    if unknown:
        listed = ", ".join(_quoted(u) for u in unknown[:_MAX_LISTED])
        if len(unknown) > _MAX_LISTED:
            listed += f" and {len(unknown) - _MAX_LISTED} more"
        noun = "constraint" if len(unknown) == 1 else "constraints"
        return f"unknown {noun} {listed}; known forms: {', '.join(KNOWN_CONSTRAINT_FORMS)}"
    rules = _rules(items)
    for rule in rules:
        if rule.kind in ("banned", "required") and not rule.terms:
            return f"constraint {_quoted(rule.line)} names no term"
        if rule.kind == "max_words" and rule.number < 1:
            return f"constraint {_quoted(rule.line)} allows no words at all"
    seen: dict[str, _Rule] = {}
    for rule in rules:
        earlier = seen.setdefault(rule.kind, rule)
        if rule.kind not in ("banned", "required", "free") and earlier.number != rule.number:
            return f"constraints {_quoted(earlier.line)} and {_quoted(rule.line)} contradict"
    parsed = parse_constraints(items)
    if (
        parsed.min_words is not None
        and parsed.max_words is not None
        and parsed.min_words > parsed.max_words
    ):
        return (
            f"min words ({parsed.min_words}) is greater than max words ({parsed.max_words}); "
            "no report can satisfy both"
        )
    for required in parsed.must_mention:
        # Stem-wise containment, as the critic matches: "Kafka topics" contains "topic".
        clash = next((b for b in parsed.banned if contains_term(required, b)), None)
        if clash is not None:
            return f"{_quoted(required)} is required but contains the banned term {_quoted(clash)}"
    return None


def _quoted(text: str) -> str:
    return "'" + (text if len(text) <= _MAX_QUOTED else text[: _MAX_QUOTED - 3] + "...") + "'"


def _number(pattern: re.Pattern[str], line: str) -> int | None:
    match = pattern.match(line)
    if match is None:
        return None
    return int(next(group for group in match.groups() if group is not None))


def _terms(value: str) -> list[str]:
    parts = (part.strip().strip(_QUOTES).strip() for part in re.split(r"[,;]", value))
    return [part for part in parts if part]
