"""The offline writer: extractive composition from passages, or revision of the last draft.

Composition picks passage sentences in MMR order (relevance to the goal against redundancy with
what is already picked) until the word target is met, makes sure each key term of the goal is
covered when a passage covers it, and groups the picks into one paragraph per source, each
ending with its citation. Revision is ``shared.llm._offline_revise``.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.llm._extract import Corpus, Draft, Paragraph, Sentence, insert, redundant
from shared.llm._offline_revise import ensure_mention, revise
from shared.llm.contexts import ParagraphData, WriteContext
from shared.llm.scoring import cosine, mmr_select
from shared.llm.text import key_terms, neutralize_markup, split_sentences

__all__ = ["load_draft", "write"]

# Sentences sharing no term with the goal only fill a draft that would otherwise be too thin.
_FLOOR_WORDS = 100


def write(context: WriteContext) -> str:
    """The body of a draft (paragraphs and an optional Gaps section), as Markdown."""
    corpus = Corpus(context["goal"], context["passages"])
    if context["revision"] == 0 or not context["previous_paragraphs"]:
        return _compose(corpus, context["goal"], context["target_words"]).render()
    draft = load_draft(corpus, context["previous_paragraphs"])
    return revise(corpus, draft, context["goal"], context["directives"]).render()


def _compose(corpus: Corpus, goal: str, target_words: int) -> Draft:
    picked: list[Sentence] = []
    words = 0
    sentences = corpus.sentences
    for index in mmr_select([s.score for s in sentences], [s.vector for s in sentences]):
        candidate = sentences[index]
        off_topic = cosine(candidate.vector, corpus.goal) <= 0.0
        if redundant(candidate, picked) or (off_topic and words >= _FLOOR_WORDS):
            continue
        picked.append(candidate)
        words += candidate.words
        if words >= target_words:
            break
    draft = Draft()
    for sentence in picked:
        insert(corpus, draft, sentence)
    for term in key_terms(goal):
        ensure_mention(corpus, draft, term, banned=(), gap=False)
    return draft


def load_draft(corpus: Corpus, paragraphs: Sequence[ParagraphData]) -> Draft:
    """The previous draft as the reviser edits it: its sentences looked up in the corpus."""
    draft = Draft()
    for paragraph in paragraphs:
        if paragraph["section"] == "gaps":
            # The Gaps section carries no citations; a marker there would cite nothing listed.
            draft.gaps.append(neutralize_markup(paragraph["text"]).strip())
            continue
        sentences = [corpus.lookup(text) for text in split_sentences(paragraph["text"])]
        # A heading is untrusted text too (a remote model may have written it): one plain line.
        heading = " ".join(neutralize_markup(paragraph.get("heading", "")).split())
        draft.paragraphs.append(Paragraph(sentences, list(paragraph["citations"]), heading))
    return draft
