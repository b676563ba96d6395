"""The report format the writer produces and the critic reads.

```
# Title

Prose paragraph ... [docs/design.md#3] [docs/ops.md#1]

## Gaps            (optional: what the sources do not cover; exempt from citation rules)

- The sources do not cover "retention".

## Sources

- [docs/design.md#3] Design
```

Other ``##`` headings may structure the body; they are not paragraphs. Fenced code blocks are
not prose and carry no citation duty.

Every citation marker outside code and the Sources list (title, headings, paragraphs, gaps) is
recorded in ``ParsedDraft.markers``, including look-alikes such as "[some source]": the critic
requires each to be a known source and the Sources list to name exactly them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from shared.llm.text import (
    CITATION,
    citation_markers,
    clip,
    contains_term,
    extract_citations,
    neutralize_markup,
    word_count,
)

__all__ = [
    "GAPS_HEADING",
    "SOURCES_HEADING",
    "CitationMarker",
    "DraftParagraph",
    "ParsedDraft",
    "cited_sources",
    "parse_draft",
    "render_draft",
    "strip_frame",
    "title_from_goal",
    "without_terms",
]

GAPS_HEADING = "Gaps"
SOURCES_HEADING = "Sources"
_SOURCE_HEADINGS = frozenset({"sources", "references"})
_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+")
_LISTED = re.compile(rf"^\s*(?:(?:[-*+]|\d{{1,3}}[.)])\s+)?{CITATION.pattern}")
_REQUEST = re.compile(
    r"^(?:please\s+)?(?:(?:write|draft|produce|create|prepare|compose|give|provide)\s+(?:me\s+)?"
    r"(?:an?\s+|the\s+)?(?:(?:short|brief|concise|detailed|one-page|quick)\s+)*"
    r"(?:report|summary|overview|note|memo|document|article|explanation|description|essay)\s+"
    r"(?:on|about|of|for|explaining|describing|covering|that\s+explains)\s+"
    r"|(?:summari[sz]e|explain|describe|outline|discuss|document|analy[sz]e|review)\s+)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class DraftParagraph:
    """A body paragraph: its 1-based number, text without citation markers, and citations."""

    number: int
    text: str
    citations: tuple[str, ...]
    #: The ``##`` heading right above the paragraph, if any (it opens a section there).
    heading: str = ""


@dataclass(frozen=True)
class CitationMarker:
    """A citation marker and where a reader sees it: title, heading, paragraph or gaps."""

    source_id: str
    place: str
    paragraph: int | None = None


@dataclass(frozen=True)
class ParsedDraft:
    """A draft split into title, body paragraphs, gap statements and listed sources."""

    title: str
    paragraphs: tuple[DraftParagraph, ...]
    gaps: tuple[str, ...]
    sources: tuple[str, ...]
    markers: tuple[CitationMarker, ...] = ()

    def prose(self) -> str:
        """Body and gap text: what coverage, mention and banned-term checks read."""
        return "\n".join([*(p.text for p in self.paragraphs), *self.gaps])

    def word_count(self) -> int:
        """Words of the body paragraphs and gap statements (title, citations, sources excluded)."""
        return sum(word_count(p.text) for p in self.paragraphs) + sum(
            word_count(g) for g in self.gaps
        )

    def cited_ids(self) -> list[str]:
        """Distinct ids the body paragraphs cite, in order of first citation."""
        return list(dict.fromkeys(c for p in self.paragraphs for c in p.citations))

    def marker_ids(self) -> list[str]:
        """Distinct ids of every citation marker outside code and the Sources list, in order."""
        return list(dict.fromkeys(m.source_id for m in self.markers))


def parse_draft(markdown: str) -> ParsedDraft:
    """Parse a draft in the report format; tolerant of whatever a remote model wrote."""
    title = ""
    section = "body"
    paragraphs: list[DraftParagraph] = []
    gaps: list[str] = []
    sources: list[str] = []
    markers: list[CitationMarker] = []
    block: list[str] = []
    in_fence = False
    heading_above = ""

    def flush() -> None:
        nonlocal heading_above
        if not block:
            return
        text = "\n".join(block)
        block.clear()
        if section == "gaps":
            gaps.extend(_ITEM.sub("", line).strip() for line in text.splitlines() if line.strip())
            markers.extend(CitationMarker(m, "gaps") for m in citation_markers(text))
        elif section == "sources":
            # Only an item's leading id is the source; its title is the source's own words.
            sources.extend(m.group(1) for line in text.splitlines() if (m := _LISTED.match(line)))
        else:
            clean, cited = extract_citations(text)
            number = len(paragraphs) + 1
            paragraphs.append(DraftParagraph(number, clean, tuple(cited), heading_above))
            heading_above = ""
            markers.extend(CitationMarker(m, "paragraph", number) for m in citation_markers(text))

    for raw in markdown.splitlines():
        line = raw.strip()
        if line.startswith(("```", "~~~")):
            flush()
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if line.startswith("#"):
            flush()
            level = len(line) - len(line.lstrip("#"))
            heading = line.lstrip("#").strip()
            place = "title" if level == 1 and not title else "heading"
            markers.extend(CitationMarker(m, place) for m in citation_markers(heading))
            if level == 1 and not title:
                title = heading
            elif heading.casefold() in _SOURCE_HEADINGS:
                section = "sources"
            elif heading.casefold() == GAPS_HEADING.casefold():
                section = "gaps"
            else:
                section = "body"
            heading_above = heading if section == "body" and place == "heading" else ""
            continue
        if not line:
            flush()
        else:
            block.append(line)
    flush()
    return ParsedDraft(title, tuple(paragraphs), tuple(gaps), tuple(sources), tuple(markers))


def cited_sources(markdown: str) -> list[str]:
    """Distinct ids a report cites inline (title, headings, paragraphs, gaps), in order.

    What a completed report's citation list must be: the ids a reader sees cited, not what the
    writer said it cited.
    """
    return parse_draft(markdown).marker_ids()


def strip_frame(markdown: str) -> str:
    """A model's body without the parts the writer adds itself: level-1 titles and Sources."""
    kept: list[str] = []
    skipping = False
    for raw in markdown.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            heading = line.lstrip("#").strip().casefold()
            skipping = heading in _SOURCE_HEADINGS
            if level == 1 or skipping:
                continue
        if not skipping:
            kept.append(raw.rstrip())
    return "\n".join(kept).strip()


def render_draft(title: str, body: str, sources: Sequence[tuple[str, str]]) -> str:
    """The full report: title, body and the list of cited sources.

    The title (from the goal) and the source titles (from the passages) are neutralised: a
    bracket in either would read as a citation the Sources list does not hold.
    """
    listed = "\n".join(f"- [{sid}] {_one_line(stitle)}".rstrip() for sid, stitle in sources)
    parts = [f"# {_one_line(title) or 'Report'}", body.strip()]
    if listed:
        parts.append(f"## {SOURCES_HEADING}\n\n{listed}")
    return "\n\n".join(part for part in parts if part) + "\n"


def _one_line(text: str) -> str:
    return " ".join(neutralize_markup(text).split())


def title_from_goal(goal: str, *, banned: Sequence[str] = ()) -> str:
    """A title from the goal's first line: the request phrasing dropped, at most 80 chars."""
    first = next((line.strip() for line in goal.splitlines() if line.strip()), "")
    subject = _REQUEST.sub("", first, count=1).strip().rstrip(".!?:;, ")
    return without_terms(clip(subject, 80) or "Report", banned)


def without_terms(title: str, banned: Sequence[str]) -> str:
    """The title with words that form a banned term removed (a title cannot be rephrased)."""
    words = title.split()
    for term in banned:
        width = max(len(term.split()), 1)
        i = 0
        while i <= len(words) - width:
            if contains_term(" ".join(words[i : i + width]), term):
                del words[i : i + width]
            else:
                i += 1
    cleaned = " ".join(words).strip(" ,;:-") or "Report"
    return cleaned[:1].upper() + cleaned[1:]
