"""The offline outline writer: the goal's questions answered one section at a time.

A different algorithm from ``shared.llm._offline_write`` (which picks the best sentences across
all passages in MMR order until a word target and groups them by source), for when that one
goes round in circles or when a prompt version asks for it:

1. one ``##`` section per key term of the goal, in the goal's order; each holds the sentences
   that mention the term, best first (at most ``_PER_TERM``), as one cited paragraph per source.
   A term no passage covers is declared in the Gaps section;
2. a closing "Further context" section that reads every passage in order of its relevance to
   the goal (not its search rank), lead sentence first, in document order, skipping sentences
   redundant with what is already there, until ``_COVERAGE_FACTOR`` times the word target.

So the draft is organised by topic rather than by source, uses every passage rather than the
best few, and is longer. Citations are only ever the ids of the passages a sentence came from.
Revisions apply the critique's directives to the previous draft (``shared.llm._offline_revise``),
keeping its headings.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.llm._extract import Corpus, Draft, Paragraph, Sentence, redundant
from shared.llm._offline_revise import GAP_TEMPLATE, revise
from shared.llm._offline_write import load_draft
from shared.llm.contexts import WriteContext
from shared.llm.scoring import cosine
from shared.llm.text import contains_term, key_terms, neutralize_markup

__all__ = ["outline"]

_PER_TERM = 4
_COVERAGE_FACTOR = 2.5
_CONTEXT_HEADING = "Further context"


def outline(context: WriteContext) -> str:
    """The body of a draft organised by the goal's key terms, as Markdown."""
    corpus = Corpus(context["goal"], context["passages"])
    if context["revision"] == 0 or not context["previous_paragraphs"]:
        return _compose(corpus, context["goal"], context["target_words"]).render()
    draft = load_draft(corpus, context["previous_paragraphs"])
    return revise(corpus, draft, context["goal"], context["directives"]).render()


def _compose(corpus: Corpus, goal: str, target_words: int) -> Draft:
    draft = Draft()
    used: list[Sentence] = []
    for term in key_terms(goal):
        carriers = sorted(
            (s for s in corpus.sentences if contains_term(s.text, term)),
            key=lambda s: (-s.score, s.passage or 0, s.position),
        )
        picked: list[Sentence] = []
        for sentence in carriers:
            if len(picked) == _PER_TERM:
                break
            if sentence not in used and not redundant(sentence, [*used, *picked]):
                picked.append(sentence)
        if not picked:
            if not any(contains_term(s.text, term) for s in used):
                draft.gaps.append(GAP_TEMPLATE.format(term=neutralize_markup(term)))
            continue
        used += picked
        _add_section(corpus, draft, _heading(term), picked)
    budget = round(target_words * _COVERAGE_FACTOR)
    words = sum(s.words for s in used)
    extra: list[Sentence] = []
    for sentence in _by_passage_relevance(corpus):
        if words >= budget:
            break
        if sentence in used or redundant(sentence, [*used, *extra]):
            continue
        extra.append(sentence)
        words += sentence.words
    _add_section(corpus, draft, _CONTEXT_HEADING, extra)
    return draft


def _by_passage_relevance(corpus: Corpus) -> list[Sentence]:
    """Every sentence, passages most relevant to the goal first, each in document order."""
    order = sorted(
        range(len(corpus.passages)),
        key=lambda i: (-cosine(corpus.passage_vectors[i], corpus.goal), i),
    )
    rank = {passage: r for r, passage in enumerate(order)}
    return sorted(
        (s for s in corpus.sentences if s.passage is not None),
        key=lambda s: (rank[s.passage or 0], s.position),
    )


def _add_section(corpus: Corpus, draft: Draft, heading: str, sentences: Sequence[Sentence]) -> None:
    """One cited paragraph per source, sources in order of their best sentence."""
    by_source: dict[str, list[Sentence]] = {}
    for sentence in sentences:
        source = corpus.source_id(sentence)
        if source is not None:
            by_source.setdefault(source, []).append(sentence)
    for index, (source, group) in enumerate(by_source.items()):
        group.sort(key=lambda s: s.position)
        draft.paragraphs.append(Paragraph(group, [source], heading if index == 0 else ""))


def _heading(term: str) -> str:
    plain = " ".join(neutralize_markup(term).split())
    return plain[:1].upper() + plain[1:]
