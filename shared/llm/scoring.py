"""Sentence scoring for extractive composition: TF-IDF vectors, centroids and MMR selection.

Vectors are sparse ``dict[stem, weight]`` normalised to unit length, so cosine is a dot
product. Iteration orders are fixed (sorted keys, index tie-breaks) to keep results
deterministic across runs and Python hash seeds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

__all__ = ["TfIdf", "Vector", "centroid", "cosine", "mmr_select"]

Vector = dict[str, float]


class TfIdf:
    """Inverse document frequencies fitted on a small corpus (the passages of one task)."""

    def __init__(self, documents: Sequence[Sequence[str]]) -> None:
        self._n = len(documents)
        frequencies: Counter[str] = Counter()
        for terms in documents:
            frequencies.update(set(terms))
        self._df = dict(frequencies)

    def idf(self, term: str) -> float:
        """Smoothed IDF; a term unseen in the corpus weighs as much as the rarest one."""
        return math.log((1 + self._n) / (1 + self._df.get(term, 0))) + 1.0

    def vector(self, terms: Sequence[str]) -> Vector:
        """Unit-length TF-IDF vector with sub-linear term frequency."""
        weights = {
            term: (1.0 + math.log(count)) * self.idf(term)
            for term, count in sorted(Counter(terms).items())
        }
        return _unit(weights)


def _unit(weights: Vector) -> Vector:
    norm = math.sqrt(sum(w * w for w in weights.values()))
    return {t: w / norm for t, w in weights.items()} if norm > 0 else {}


def cosine(a: Vector, b: Vector) -> float:
    """Cosine similarity of two unit vectors."""
    if len(a) > len(b):
        a, b = b, a
    return sum(weight * b.get(term, 0.0) for term, weight in a.items())


def centroid(vectors: Sequence[Vector]) -> Vector:
    """The normalised mean of the vectors: what the text as a whole is about."""
    total: dict[str, float] = {}
    for vector in vectors:
        for term, weight in vector.items():
            total[term] = total.get(term, 0.0) + weight
    return _unit(dict(sorted(total.items())))


def mmr_select(
    relevance: Sequence[float],
    vectors: Sequence[Vector],
    *,
    diversity: float = 0.3,
    eligible: Callable[[int], bool] = lambda _: True,
) -> Iterator[int]:
    """Yield candidate indices in maximal-marginal-relevance order.

    Each step picks ``argmax (1 - diversity) * relevance - diversity * max_sim(selected)``;
    ties go to the lower index. The caller stops iterating when its budget is spent, so the
    cost is O(picks * candidates).
    """
    remaining = [i for i in range(len(relevance)) if eligible(i)]
    redundancy = dict.fromkeys(remaining, 0.0)
    while remaining:
        best = max(
            remaining,
            key=lambda i: ((1 - diversity) * relevance[i] - diversity * redundancy[i], -i),
        )
        remaining.remove(best)
        yield best
        for i in remaining:
            redundancy[i] = max(redundancy[i], cosine(vectors[i], vectors[best]))
