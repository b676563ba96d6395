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
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from shared.llm.text import clip, contains_term, extract_citations, word_count

__all__ = [
    "GAPS_HEADING",
    "SOURCES_HEADING",
    "DraftParagraph",
    "ParsedDraft",
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


@dataclass(frozen=True)
class ParsedDraft:
    """A draft split into title, body paragraphs, gap statements and listed sources."""

    title: str
    paragraphs: tuple[DraftParagraph, ...]
    gaps: tuple[str, ...]
    sources: tuple[str, ...]

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


def parse_draft(markdown: str) -> ParsedDraft:
    """Parse a draft in the report format; tolerant of whatever a remote model wrote."""
    title = ""
    section = "body"
    paragraphs: list[DraftParagraph] = []
    gaps: list[str] = []
    sources: list[str] = []
    block: list[str] = []
    in_fence = False

    def flush() -> None:
        if not block:
            return
        text = "\n".join(block)
        block.clear()
        if section == "gaps":
            gaps.extend(_ITEM.sub("", line).strip() for line in text.splitlines() if line.strip())
        elif section == "sources":
            sources.extend(extract_citations(text)[1])
        else:
            clean, cited = extract_citations(text)
            paragraphs.append(DraftParagraph(len(paragraphs) + 1, clean, tuple(cited)))

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
            if level == 1 and not title:
                title = heading
            elif heading.casefold() in _SOURCE_HEADINGS:
                section = "sources"
            elif heading.casefold() == GAPS_HEADING.casefold():
                section = "gaps"
            else:
                section = "body"
            continue
        if not line:
            flush()
        else:
            block.append(line)
    flush()
    return ParsedDraft(title, tuple(paragraphs), tuple(gaps), tuple(sources))


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
    """The full report: title, body and the list of cited sources."""
    listed = "\n".join(f"- [{sid}] {stitle}".rstrip() for sid, stitle in sources)
    parts = [f"# {title}", body.strip()]
    if listed:
        parts.append(f"## {SOURCES_HEADING}\n\n{listed}")
    return "\n\n".join(part for part in parts if part) + "\n"


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
