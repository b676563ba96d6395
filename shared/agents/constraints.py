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

Anything else is kept verbatim in ``free_text``; the critic reports it as informational only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Constraints", "parse_constraints"]

_BANNED = re.compile(
    r"^(?:avoid|banned|ban|forbidden|never\s+use|do\s+not\s+use|don'?t\s+use|"
    r"do\s+not\s+mention|don'?t\s+mention|never\s+mention)\s*[:=\-]?\s*(?P<value>.+)$",
    re.IGNORECASE,
)
_REQUIRED = re.compile(
    r"^(?:must\s+mention|must\s+include|must\s+cover|mention|required?)\s*[:=\-]?\s*(?P<value>.+)$",
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


def parse_constraints(items: Sequence[str]) -> Constraints:
    """Parse each constraint line; the last limit of a kind wins, terms accumulate in order."""
    banned: list[str] = []
    required: list[str] = []
    free: list[str] = []
    limits: dict[str, int] = {}
    for item in items:
        line = " ".join(item.split()).rstrip(".")
        if not line:
            continue
        if (n := _number(_MAX_WORDS, line)) is not None:
            limits["max_words"] = n
        elif (n := _number(_BELOW_WORDS, line)) is not None:
            limits["max_words"] = max(n - 1, 0)
        elif (n := _number(_MIN_WORDS, line)) is not None:
            limits["min_words"] = n
        elif (n := _number(_MIN_SOURCES, line)) is not None:
            limits["min_sources"] = n
        elif found := _BANNED.match(line):
            banned.extend(_terms(found.group("value")))
        elif found := _REQUIRED.match(line):
            required.extend(_terms(found.group("value")))
        else:
            free.append(line)
    return Constraints(
        banned=tuple(dict.fromkeys(banned)),
        must_mention=tuple(dict.fromkeys(required)),
        max_words=limits.get("max_words"),
        min_words=limits.get("min_words"),
        min_sources=limits.get("min_sources"),
        free_text=tuple(free),
    )


def _number(pattern: re.Pattern[str], line: str) -> int | None:
    match = pattern.match(line)
    if match is None:
        return None
    return int(next(group for group in match.groups() if group is not None))


def _terms(value: str) -> list[str]:
    parts = (part.strip().strip(_QUOTES).strip() for part in re.split(r"[,;]", value))
    return [part for part in parts if part]
