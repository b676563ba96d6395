"""The draft model the offline writer edits: scored sentences grouped into cited paragraphs.

``Corpus`` turns the passages of a write task into candidate sentences scored once against the
goal: 0.6 x TF-IDF relevance to the goal + 0.3 x salience (closeness to the centroid of all
sentences) + 0.1 x the passage's search rank.

Passages are untrusted: every sentence goes through ``neutralize_markup`` before it can reach a
draft, so a passage cannot put a citation marker, a link or a heading into the report. The
draft's citations are only ever the ids of the passages the sentences came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.llm.contexts import PassageData
from shared.llm.scoring import TfIdf, Vector, centroid, cosine
from shared.llm.text import (
    contains_term,
    content_terms,
    ensure_period,
    markdown_sentences,
    neutralize_markup,
    normalize,
    word_count,
)

__all__ = ["DUPLICATE", "Corpus", "Draft", "Paragraph", "Sentence", "insert", "redundant"]

_MIN_WORDS, _MAX_WORDS = 4, 80  # sentences outside this range are fragments or walls of text
DUPLICATE = 0.8


@dataclass(eq=False)
class Sentence:
    text: str
    vector: Vector
    score: float
    passage: int | None  # index of the passage it came from; None for text not from a passage
    position: int

    @property
    def words(self) -> int:
        return word_count(self.text)


@dataclass
class Paragraph:
    sentences: list[Sentence]
    citations: list[str]
    #: A ``##`` heading opening a section at this paragraph (outline drafts); "" for none.
    heading: str = ""


@dataclass
class Draft:
    paragraphs: list[Paragraph] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)

    def sentences(self) -> list[Sentence]:
        return [s for p in self.paragraphs for s in p.sentences]

    def words(self) -> int:
        return sum(s.words for s in self.sentences()) + sum(word_count(g) for g in self.gaps)

    def mentions(self, term: str) -> bool:
        return any(contains_term(s.text, term) for s in self.sentences())

    def render(self) -> str:
        blocks: list[str] = []
        for p in self.paragraphs:
            if not p.sentences:
                continue
            if p.heading:
                blocks.append(f"## {p.heading}")
            blocks.append(
                " ".join(
                    [
                        *(ensure_period(s.text) for s in p.sentences),
                        *(f"[{c}]" for c in p.citations),
                    ]
                )
            )
        if self.gaps:
            blocks.append("## Gaps\n\n" + "\n".join(f"- {gap}" for gap in self.gaps))
        return "\n\n".join(blocks)


class Corpus:
    """Candidate sentences of the passages, scored once against the goal."""

    def __init__(self, goal: str, passages: Sequence[PassageData]) -> None:
        self.passages = passages
        documents = [content_terms(f"{p['title']} {p['text']}") for p in passages]
        self.tfidf = TfIdf(documents)
        self.goal = self.tfidf.vector(content_terms(goal))
        self.passage_vectors = [self.tfidf.vector(terms) for terms in documents]
        raw: list[tuple[int, int, str]] = []
        seen: set[str] = set()
        for index, passage in enumerate(passages):
            for position, sentence in enumerate(markdown_sentences(passage["text"])):
                text = neutralize_markup(sentence).strip()
                key = normalize(text)
                if key in seen or not _MIN_WORDS <= word_count(text) <= _MAX_WORDS:
                    continue
                seen.add(key)
                raw.append((index, position, text))
        vectors = [self.tfidf.vector(content_terms(text)) for _, _, text in raw]
        self._center = centroid(vectors)
        self.sentences = [
            Sentence(text, vector, self._score(vector, index), index, position)
            for (index, position, text), vector in zip(raw, vectors, strict=True)
        ]
        self._by_key = {normalize(s.text): s for s in self.sentences}

    def _score(self, vector: Vector, passage: int | None) -> float:
        rank_prior = 0.0 if passage is None else 1.0 - passage / max(len(self.passages), 1)
        return (
            0.6 * cosine(vector, self.goal) + 0.3 * cosine(vector, self._center) + 0.1 * rank_prior
        )

    def lookup(self, text: str) -> Sentence:
        """The corpus sentence with this text, or a freshly scored one (e.g. written by an LLM)."""
        found = self._by_key.get(normalize(text))
        if found is not None:
            return found
        # Not a passage sentence (an earlier draft's own words): still never a marker carrier.
        text = neutralize_markup(text).strip()
        vector = self.tfidf.vector(content_terms(text))
        return Sentence(text, vector, self._score(vector, None), None, 10_000)

    def source_id(self, sentence: Sentence) -> str | None:
        return None if sentence.passage is None else self.passages[sentence.passage]["source_id"]

    def best_passage(self, text: str) -> str | None:
        """The id of the passage most similar to ``text`` (ties: the higher-ranked passage)."""
        if not self.passages:
            return None
        vector = self.tfidf.vector(content_terms(text))
        best = max(
            range(len(self.passages)), key=lambda i: (cosine(vector, self.passage_vectors[i]), -i)
        )
        return self.passages[best]["source_id"]


def redundant(candidate: Sentence, chosen: Sequence[Sentence]) -> bool:
    return any(cosine(candidate.vector, s.vector) > DUPLICATE for s in chosen)


def insert(corpus: Corpus, draft: Draft, sentence: Sentence) -> None:
    """Add a passage sentence to the paragraph citing its passage, in source order."""
    source = corpus.source_id(sentence)
    for paragraph in draft.paragraphs:
        if source in paragraph.citations:
            kin = [i for i, s in enumerate(paragraph.sentences) if s.passage == sentence.passage]
            before = [i for i in kin if paragraph.sentences[i].position < sentence.position]
            at = before[-1] + 1 if before else (kin[0] if kin else len(paragraph.sentences))
            paragraph.sentences.insert(at, sentence)
            return
    draft.paragraphs.append(Paragraph([sentence], [source] if source else []))
