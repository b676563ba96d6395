"""The offline summarizer: centroid-scored extractive compression under a character budget.

Each memory item is cut into sentence units that remember their source ids (a passage's ref,
a draft paragraph's citations, a manifest bullet's citations). Units are scored by closeness to
the goal and to the centroid of all units (what the memory as a whole is about), plus a small
recency bonus, then kept greedily best-first while the exact rendered size stays within the
budget, skipping near-duplicates. Kept units are rendered as bullets in their original order,
grouped into fixed sections, each bullet ending with its source ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from shared.llm.contexts import ItemData, SummarizeContext
from shared.llm.scoring import TfIdf, centroid, cosine
from shared.llm.text import (
    CITATION,
    clip,
    content_terms,
    ensure_period,
    extract_citations,
    markdown_sentences,
    normalize,
    word_count,
)

__all__ = ["SECTIONS", "summarize"]

SECTIONS = ("Findings", "Draft", "Critique")
_SECTION_OF_KIND = {"passage": "Findings", "draft": "Draft", "critique": "Critique"}
_MAX_UNIT_CHARS = 300
_DUPLICATE = 0.75


@dataclass(frozen=True)
class _Unit:
    section: str
    text: str
    cites: tuple[str, ...]
    item: int
    position: int

    def line(self) -> str:
        sources = " ".join(f"[{c}]" for c in self.cites)
        return f"- {ensure_period(clip(self.text, _MAX_UNIT_CHARS))} {sources}".rstrip()


def summarize(context: SummarizeContext) -> str:
    """The manifest body: sections of cited bullets, at most ``budget_chars`` long."""
    items = context["items"]
    units = [u for i, item in enumerate(items) for u in _units(i, item)]
    if not units:
        return ""
    tfidf = TfIdf([content_terms(item["text"]) for item in items])
    vectors = [tfidf.vector(content_terms(u.text)) for u in units]
    goal = tfidf.vector(content_terms(context["goal"]))
    center = centroid(vectors)
    recency = {i: i / max(len(items) - 1, 1) for i in range(len(items))}
    scores = [
        0.5 * cosine(v, goal) + 0.4 * cosine(v, center) + 0.1 * recency[u.item]
        for u, v in zip(units, vectors, strict=True)
    ]
    order = sorted(range(len(units)), key=lambda i: (-scores[i], units[i].item, units[i].position))
    kept: list[int] = []
    sections: dict[str, int] = {}  # section -> number of kept lines
    size = 0
    for index in order:
        unit = units[index]
        if any(cosine(vectors[index], vectors[k]) > _DUPLICATE for k in kept):
            continue
        cost = len(unit.line()) + 1
        if unit.section not in sections:
            cost = len(unit.line()) + len(f"## {unit.section}\n") + (2 if sections else 0)
        if size + cost > context["budget_chars"]:
            continue
        kept.append(index)
        sections[unit.section] = sections.get(unit.section, 0) + 1
        size += cost
    return _render([units[i] for i in kept])


def _render(units: list[_Unit]) -> str:
    ranked = {name: n for n, name in enumerate(SECTIONS)}
    names = sorted({u.section for u in units}, key=lambda name: (ranked.get(name, 99), name))
    blocks = []
    for name in names:
        lines = [
            u.line() for u in sorted(units, key=lambda u: (u.item, u.position)) if u.section == name
        ]
        blocks.append(f"## {name}\n" + "\n".join(lines))
    return "\n\n".join(blocks)


def _units(index: int, item: ItemData) -> Iterator[_Unit]:
    """Sentence units of one item, each with the source ids it stands on."""
    if item["kind"] == "goal":
        return  # the manifest header states the goal
    section = _SECTION_OF_KIND.get(item["kind"], "Findings")
    position = 0
    seen: set[str] = set()
    for heading, block in _blocks(item["text"]):
        if heading.casefold() == "sources":
            continue  # a draft's source list repeats its citations
        if item["kind"] == "manifest":
            if heading.startswith("Project manifest"):
                continue  # the old header: version and goal, restated by the new header
            section = heading if heading in SECTIONS else "Findings"
        cited = extract_citations(block)[1]
        text = CITATION.sub("", block)  # keeps line breaks, which mark code fences and lists
        # A passage is its own source; a critique's "[banned]"-style tags are not citations.
        cites: tuple[str, ...] = (item["ref"],)
        if cited and item["kind"] == "manifest":
            cites = tuple(cited)
        elif cited and item["kind"] not in ("passage", "critique"):
            cites = (item["ref"], *cited)
        for sentence in markdown_sentences(text):
            key = normalize(sentence)
            if word_count(sentence) < 3 or key in seen:
                continue
            seen.add(key)
            yield _Unit(section, sentence, cites, index, position)
            position += 1


def _blocks(text: str) -> Iterator[tuple[str, str]]:
    """(nearest heading, block) pairs; bullets are blocks of their own, so each keeps its cites."""
    heading = ""
    current: list[str] = []
    for raw in [*text.splitlines(), ""]:
        line = raw.strip()
        starts_item = line.startswith(("- ", "* ", "+ "))
        if current and (not line or line.startswith("#") or starts_item):
            yield heading, "\n".join(current)
            current = []
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line:
            current.append(line)
