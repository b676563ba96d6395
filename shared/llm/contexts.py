"""The structured ``CompletionRequest.context`` each task kind carries (plain JSON-like data).

Agents build these; the offline model computes from them; remote models ignore them and read
the prompt. Keeping them as TypedDicts (not message models) keeps ``shared.llm`` free of any
dependency on the agents that call it.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

__all__ = [
    "CheckData",
    "CritiqueContext",
    "DirectiveData",
    "ItemData",
    "ParagraphData",
    "PassageData",
    "SummarizeContext",
    "WriteContext",
]


class PassageData(TypedDict):
    """A source passage the writer may quote: untrusted text, as retrieved.

    Kept raw because the offline model needs its Markdown structure; whatever reaches a report
    or a prompt goes through ``shared.llm.text.neutralize_markup`` first.
    """

    source_id: str
    title: str
    text: str


class ParagraphData(TypedDict):
    """A paragraph of the previous draft: text without citation markers, and its citations.

    ``heading`` is the ``##`` heading right above it, if any (outline drafts keep theirs).
    """

    text: str
    citations: list[str]
    section: Literal["body", "gaps"]
    heading: NotRequired[str]


class DirectiveData(TypedDict):
    """One parsed critique finding: its tag and, where it has them, a term and a word limit."""

    tag: str
    term: str | None
    limit: int | None


class WriteContext(TypedDict):
    """Inputs of a ``write`` request."""

    goal: str
    passages: list[PassageData]
    revision: int
    previous_paragraphs: list[ParagraphData]
    directives: list[DirectiveData]
    target_words: int


class CheckData(TypedDict):
    """One rubric check: whether it passed, a factual summary, and its tagged findings."""

    name: str
    passed: bool
    summary: str
    findings: list[str]


class CritiqueContext(TypedDict):
    """Inputs of a ``critique`` request: the rubric's results, computed before the model runs."""

    goal: str
    verdict: Literal["approved", "revise"]
    score: float
    checks: list[CheckData]
    notes: list[str]


class ItemData(TypedDict):
    """A memory item to compress."""

    kind: str
    ref: str
    text: str


class SummarizeContext(TypedDict):
    """Inputs of a ``summarize`` request; ``budget_chars`` bounds the manifest body."""

    goal: str
    items: list[ItemData]
    budget_chars: int
