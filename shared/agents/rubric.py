"""The critic's rubric: six explicit checks, each with tagged, actionable findings.

Checks (always all six, so scores compare across drafts):

- ``goal_coverage``: every key term of the goal appears in the body or the Gaps section;
- ``citations``: every body paragraph cites a source, and at least ``min sources`` distinct
  known sources are cited when a constraint asks for it;
- ``citations_known``: every citation marker a reader sees (title, headings, paragraphs, gaps;
  look-alikes such as "[a source]" included) is one of the task's sources, and the Sources list
  names exactly the cited ids. Deterministic whatever the model: it is what stops a passage
  that carries a forged marker from reaching an approved report with a citation its citation
  list does not hold;
- ``length``: words of body and gaps within the limits (defaults, overridden by constraints);
- ``banned_content``: no banned term anywhere (title included);
- ``required_mentions``: every ``must mention`` term appears in the body or the Gaps section.

Each finding renders as one feedback line starting with a machine-readable tag, e.g.
``[banned] Remove "simply" (paragraph 2).``; ``parse_finding`` reads such a line back, which
is how the writer turns feedback into edits. Tags: missing-term, uncited, unknown-source,
sources-list, min-sources, too-long, too-short, banned, must-mention; ``note`` marks
information only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from shared.agents.constraints import Constraints
from shared.agents.draft import ParsedDraft
from shared.llm.text import contains_term, key_terms

__all__ = [
    "CHECKS",
    "CheckOutcome",
    "Finding",
    "RubricLimits",
    "RubricReport",
    "evaluate",
    "parse_finding",
]

CHECKS = (
    "goal_coverage",
    "citations",
    "citations_known",
    "length",
    "banned_content",
    "required_mentions",
)
_LINE = re.compile(r"^\[(?P<tag>[a-z][a-z-]*)\]\s*(?P<body>.*)$", re.DOTALL)
_QUOTED = re.compile(r'"([^"]*)"')
_LIMIT = re.compile(r"\bat (?:most|least) (\d+)\b")
_PARAGRAPH = re.compile(r"\bParagraph (\d+)\b")
_MAX_LINE = 500  # feedback items are ShortText


@dataclass(frozen=True)
class RubricLimits:
    """Default length limits in words, used when the constraints set none."""

    min_words: int = 80
    max_words: int = 1200


@dataclass(frozen=True)
class Finding:
    """One problem (or note), rendered as a tagged feedback line."""

    tag: str
    message: str
    term: str | None = None
    limit: int | None = None
    paragraph: int | None = None


@dataclass(frozen=True)
class CheckOutcome:
    """One check: passed or not, a factual verb phrase for prose, and its findings."""

    name: str
    passed: bool
    summary: str
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class RubricReport:
    """All checks of one draft, plus informational notes."""

    checks: tuple[CheckOutcome, ...]
    notes: tuple[Finding, ...] = ()

    @property
    def approved(self) -> bool:
        """Approved iff every check passed."""
        return all(c.passed for c in self.checks)

    @property
    def score(self) -> float:
        """The fraction of checks passed."""
        return sum(c.passed for c in self.checks) / len(self.checks) if self.checks else 0.0

    def as_dict(self) -> dict[str, bool]:
        """Check name to passed, in rubric order."""
        return {c.name: c.passed for c in self.checks}

    def feedback(self, limit: int = 50) -> list[str]:
        """The findings, then the notes, as at most ``limit`` lines."""
        lines = [f.message for c in self.checks for f in c.findings] + [
            n.message for n in self.notes
        ]
        if len(lines) > limit:
            lines = [*lines[: limit - 1], f"[note] {len(lines) - limit + 1} more findings omitted."]
        return lines


def _finding(
    tag: str,
    body: str,
    *,
    term: str | None = None,
    limit: int | None = None,
    paragraph: int | None = None,
) -> Finding:
    return Finding(tag, f"[{tag}] {body}"[:_MAX_LINE], term, limit, paragraph)


def _quote(term: str) -> str:
    return '"' + term.replace('"', "'")[:120] + '"'


def evaluate(
    goal: str,
    constraints: Constraints,
    draft: ParsedDraft,
    source_ids: Sequence[str],
    limits: RubricLimits = RubricLimits(),
) -> RubricReport:
    """Run every check of the rubric on a parsed draft."""
    notes = [
        _finding("note", f"Not checked automatically: {_quote(text)}.")
        for text in constraints.free_text
    ]
    checks = (
        _coverage(goal, draft, notes),
        _citations(draft, source_ids, constraints.min_sources),
        _citations_known(draft, source_ids),
        _length(draft, constraints, limits),
        _banned(draft, constraints.banned),
        _mentions(draft, constraints.must_mention, notes),
    )
    unique = {note.message: note for note in notes}  # a term can be a key term and required
    return RubricReport(checks, tuple(unique.values()))


def _gap_only(draft: ParsedDraft, term: str, notes: list[Finding]) -> None:
    body = "\n".join(p.text for p in draft.paragraphs)
    if not contains_term(body, term) and any(contains_term(g, term) for g in draft.gaps):
        notes.append(
            _finding("note", f"{_quote(term)} appears only as a gap: the sources do not cover it.")
        )


def _coverage(goal: str, draft: ParsedDraft, notes: list[Finding]) -> CheckOutcome:
    terms = key_terms(goal)
    prose = draft.prose()
    missing = [t for t in terms if not contains_term(prose, t)]
    for term in terms:
        if term not in missing:
            _gap_only(draft, term, notes)
    findings = tuple(
        _finding("missing-term", f"Cover {_quote(t)}: no paragraph mentions it.", term=t)
        for t in missing
    )
    if not missing:
        listed = ", ".join(terms) if terms else "none found"
        return CheckOutcome("goal_coverage", True, f"covers every key term of the goal ({listed})")
    summary = f"misses {len(missing)} of {len(terms)} key terms of the goal ({', '.join(missing)})"
    return CheckOutcome("goal_coverage", False, summary, findings)


def _citations(
    draft: ParsedDraft, source_ids: Sequence[str], min_sources: int | None
) -> CheckOutcome:
    known = set(source_ids)
    findings = [
        _finding("uncited", f"Paragraph {p.number} cites no source.", paragraph=p.number)
        for p in draft.paragraphs
        if not p.citations
    ]
    distinct = len([c for c in draft.cited_ids() if c in known])
    if min_sources is not None and distinct < min_sources:
        body = f"Cite at least {min_sources} distinct sources (now {distinct})."
        findings.append(_finding("min-sources", body, limit=min_sources))
    if not findings:
        return CheckOutcome(
            "citations", True, f"cites a source in every paragraph ({distinct} known sources)"
        )
    uncited = sum(f.tag == "uncited" for f in findings)
    parts = [f"has {uncited} uncited paragraph(s)"] if uncited else []
    if min_sources is not None and distinct < min_sources:
        parts.append(f"cites {distinct} of the {min_sources} required sources")
    return CheckOutcome("citations", False, " and ".join(parts), tuple(findings))


_PLACES = {"title": "The title", "heading": "A heading", "gaps": "The Gaps section"}


def _citations_known(draft: ParsedDraft, source_ids: Sequence[str]) -> CheckOutcome:
    known = set(source_ids)
    findings: list[Finding] = []
    reported: set[tuple[str, int | None, str]] = set()
    for marker in draft.markers:
        key = (marker.place, marker.paragraph, marker.source_id)
        if marker.source_id in known or key in reported:
            continue
        reported.add(key)
        where = (
            f"Paragraph {marker.paragraph}"
            if marker.paragraph is not None
            else _PLACES.get(marker.place, "The report")
        )
        body = f"{where} cites {_quote(marker.source_id)}, which is not among the sources."
        findings.append(
            _finding("unknown-source", body, term=marker.source_id, paragraph=marker.paragraph)
        )
    unknown = len(findings)
    cited = draft.marker_ids()
    listed = list(dict.fromkeys(draft.sources))
    for sid in cited:
        if sid in known and sid not in listed:
            body = f"List {_quote(sid)} under Sources: the report cites it."
            findings.append(_finding("sources-list", body, term=sid))
    for sid in listed:
        if sid not in cited:
            body = f"Drop {_quote(sid)} from Sources: the report does not cite it."
            findings.append(_finding("sources-list", body, term=sid))
    if not findings:
        return CheckOutcome(
            "citations_known", True, "cites only known sources, each listed under Sources"
        )
    parts = [f"cites {unknown} unknown source(s)"] if unknown else []
    if len(findings) > unknown:
        parts.append("lists sources that differ from its citations")
    return CheckOutcome("citations_known", False, " and ".join(parts), tuple(findings))


def _length(draft: ParsedDraft, constraints: Constraints, limits: RubricLimits) -> CheckOutcome:
    maximum = constraints.max_words if constraints.max_words is not None else limits.max_words
    # A tight maximum lowers the default minimum, so the two limits never contradict each other.
    minimum = (
        constraints.min_words
        if constraints.min_words is not None
        else min(limits.min_words, maximum // 2)
    )
    words = draft.word_count()
    if words > maximum:
        body = f"Cut to at most {maximum} words (now {words})."
        summary = f"is {words} words long, above the limit of {maximum}"
        return CheckOutcome("length", False, summary, (_finding("too-long", body, limit=maximum),))
    if words < minimum:
        body = f"Expand to at least {minimum} words (now {words})."
        summary = f"is {words} words long, below the minimum of {minimum}"
        return CheckOutcome("length", False, summary, (_finding("too-short", body, limit=minimum),))
    return CheckOutcome("length", True, f"is {words} words long, within {minimum}-{maximum}")


def _banned(draft: ParsedDraft, banned: Sequence[str]) -> CheckOutcome:
    findings: list[Finding] = []
    for term in banned:
        numbers = [str(p.number) for p in draft.paragraphs if contains_term(p.text, term)]
        places = (
            [f"paragraph{'s' if len(numbers) > 1 else ''} {', '.join(numbers)}"] if numbers else []
        )
        if any(contains_term(g, term) for g in draft.gaps):
            places.append("gaps")
        if contains_term(draft.title, term):
            places.append("title")
        if places:
            where = "; ".join(places)
            findings.append(_finding("banned", f"Remove {_quote(term)} ({where}).", term=term))
    if not findings:
        return CheckOutcome("banned_content", True, "contains no banned term")
    terms = ", ".join(_quote(f.term or "") for f in findings)
    return CheckOutcome(
        "banned_content", False, f"contains the banned term(s) {terms}", tuple(findings)
    )


def _mentions(draft: ParsedDraft, required: Sequence[str], notes: list[Finding]) -> CheckOutcome:
    prose = draft.prose()
    missing = [t for t in required if not contains_term(prose, t)]
    for term in required:
        if term not in missing:
            _gap_only(draft, term, notes)
    if not missing:
        return CheckOutcome("required_mentions", True, "mentions every required term")
    findings = tuple(
        _finding("must-mention", f"Mention {_quote(t)}: the constraints require it.", term=t)
        for t in missing
    )
    summary = "does not mention " + ", ".join(_quote(t) for t in missing)
    return CheckOutcome("required_mentions", False, summary, findings)


def parse_finding(line: str) -> Finding | None:
    """Read a tagged feedback line back into a finding; ``None`` when it has no tag."""
    match = _LINE.match(line.strip())
    if match is None:
        return None
    body = match.group("body")
    quoted = _QUOTED.search(body)
    limit = _LIMIT.search(body)
    paragraph = _PARAGRAPH.search(body)
    return Finding(
        tag=match.group("tag"),
        message=line.strip(),
        term=quoted.group(1) if quoted else None,
        limit=int(limit.group(1)) if limit else None,
        paragraph=int(paragraph.group(1)) if paragraph else None,
    )
