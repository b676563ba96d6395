"""The offline reviser: critique directives applied to the previous draft.

Revision edits the previous draft instead of starting over. Each directive is an idempotent
"make it so" rule, so replaying older feedback is harmless:

- ``unknown-source``: drop citations of ids that are not passages (marker look-alikes in the
  text are already gone: sentences are neutralised when loaded);
- ``sources-list``: nothing to do, the writer agent rebuilds the Sources list from the body;
- ``banned``: drop every sentence (and gap) containing the term;
- ``uncited``: cite the most similar passage on paragraphs without a citation;
- ``missing-term`` / ``must-mention``: add the best passage sentence with the term, or declare it
  in the Gaps section when no passage has it;
- ``min-sources``: add the best sentence of each source not cited yet, until enough are cited;
- ``too-short``: add sentences in MMR order until the minimum is met;
- ``too-long``: drop the lowest-scoring sentences, sparing the only carrier of a term that must
  stay, until the maximum is met.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from shared.llm._extract import Corpus, Draft, Paragraph, Sentence, insert, redundant
from shared.llm.contexts import DirectiveData
from shared.llm.scoring import mmr_select
from shared.llm.text import contains_term, key_terms, neutralize_markup

__all__ = ["GAP_TEMPLATE", "ensure_mention", "revise"]

GAP_TEMPLATE = 'The sources do not cover "{term}".'
_GAP_TERM = re.compile(r'"([^"]+)"')


def revise(corpus: Corpus, draft: Draft, goal: str, directives: Sequence[DirectiveData]) -> Draft:
    """Apply critique directives, most structural first, so later rules see the final text."""
    by_tag: dict[str, list[DirectiveData]] = {}
    for directive in directives:
        by_tag.setdefault(directive["tag"], []).append(directive)
    banned = tuple(d["term"] for d in by_tag.get("banned", []) if d["term"])
    wanted = [
        d["term"]
        for tag in ("missing-term", "must-mention")
        for d in by_tag.get(tag, [])
        if d["term"]
    ]
    if "unknown-source" in by_tag:
        known = {p["source_id"] for p in corpus.passages}
        for paragraph in draft.paragraphs:
            paragraph.citations = [c for c in paragraph.citations if c in known]
    for term in banned:
        for paragraph in draft.paragraphs:
            paragraph.sentences = [
                s for s in paragraph.sentences if not contains_term(s.text, term)
            ]
            if contains_term(paragraph.heading, term):
                paragraph.heading = ""  # the rubric reads no headings, but readers do
        draft.gaps = [g for g in draft.gaps if not contains_term(g, term)]
    draft.paragraphs = [p for p in draft.paragraphs if p.sentences]
    if "uncited" in by_tag or "unknown-source" in by_tag:
        _cite_uncited(corpus, draft)
    for term in wanted:
        ensure_mention(corpus, draft, term, banned=banned, gap=True)
    for directive in by_tag.get("min-sources", []):
        _widen_sources(corpus, draft, directive["limit"] or 0, banned)
    for directive in by_tag.get("too-short", []):
        _lengthen(corpus, draft, directive["limit"] or 0, banned)
    for directive in by_tag.get("too-long", []):
        _trim(draft, directive["limit"] or 0, [*wanted, *key_terms(goal)])
    # A gap is moot once the body covers its term.
    draft.gaps = [g for g in draft.gaps if not any(draft.mentions(t) for t in _GAP_TERM.findall(g))]
    return draft


def _cite_uncited(corpus: Corpus, draft: Draft) -> None:
    kept: list[Paragraph] = []
    for paragraph in draft.paragraphs:
        if not paragraph.citations:
            best = corpus.best_passage(" ".join(s.text for s in paragraph.sentences))
            if best is None:
                continue  # nothing to cite: an unsupported paragraph goes
            paragraph.citations = [best]
        kept.append(paragraph)
    draft.paragraphs = kept


def _allowed(sentence: Sentence, draft: Draft, banned: Sequence[str]) -> bool:
    return sentence not in draft.sentences() and not any(
        contains_term(sentence.text, t) for t in banned
    )


def ensure_mention(
    corpus: Corpus, draft: Draft, term: str, *, banned: Sequence[str], gap: bool
) -> None:
    if draft.mentions(term):
        return
    carriers = [
        (s.score, -i, s)
        for i, s in enumerate(corpus.sentences)
        if contains_term(s.text, term) and _allowed(s, draft, banned)
    ]
    if carriers:
        insert(corpus, draft, max(carriers, key=lambda c: (c[0], c[1]))[2])
    elif gap and not any(contains_term(g, term) for g in draft.gaps):
        draft.gaps.append(GAP_TEMPLATE.format(term=neutralize_markup(term).replace('"', "'")))


def _widen_sources(corpus: Corpus, draft: Draft, wanted: int, banned: Sequence[str]) -> None:
    cited = {c for p in draft.paragraphs for c in p.citations}
    for sentence in sorted(corpus.sentences, key=lambda s: -s.score):
        if len(cited) >= wanted:
            return
        source = corpus.source_id(sentence)
        if source not in cited and _allowed(sentence, draft, banned):
            insert(corpus, draft, sentence)
            cited.add(source or "")


def _lengthen(corpus: Corpus, draft: Draft, minimum: int, banned: Sequence[str]) -> None:
    sentences = corpus.sentences
    for index in mmr_select(
        [s.score for s in sentences],
        [s.vector for s in sentences],
        eligible=lambda i: _allowed(sentences[i], draft, banned),
    ):
        if draft.words() >= minimum:
            return
        if not redundant(sentences[index], draft.sentences()):
            insert(corpus, draft, sentences[index])


def _trim(draft: Draft, maximum: int, protected_terms: Sequence[str]) -> None:
    """Drop the lowest-scoring sentences, sparing the only carrier of a term that must stay."""
    sentences = draft.sentences()
    carried = [{t for t in protected_terms if contains_term(s.text, t)} for s in sentences]
    carriers = Counter(t for terms in carried for t in terms)
    words = draft.words()
    left = len(sentences)
    removed: set[int] = set()
    order = sorted(range(len(sentences)), key=lambda i: (sentences[i].score, -i))
    for spare_sole_carriers in (True, False):  # the second pass runs only if the first fell short
        for i in order:
            if words <= maximum or left <= 1:
                break
            if i in removed or (spare_sole_carriers and any(carriers[t] == 1 for t in carried[i])):
                continue
            removed.add(i)
            words -= sentences[i].words
            left -= 1
            carriers.subtract(carried[i])
    victims = {id(sentences[i]) for i in removed}
    for paragraph in draft.paragraphs:
        paragraph.sentences = [s for s in paragraph.sentences if id(s) not in victims]
    draft.paragraphs = [p for p in draft.paragraphs if p.sentences]
