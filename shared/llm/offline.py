"""``OfflineModel``: deterministic extractive algorithms behind the language-model port.

No network, no weights, no randomness: the same request always yields the same text, which
makes the whole system reproducible in tests and demos. It reads ``request.context`` (see
``shared.llm.contexts``), not the prompt.

- ``write``: TF-IDF + MMR extractive composition (``tfidf-mmr-extractive``, the default), or
  a question-driven outline (``term-outline``), each with feedback-driven revision
  (``shared.llm._offline_write``, ``shared.llm._offline_outline``);
- ``summarize``: centroid-scored extraction under a character budget
  (``shared.llm._offline_summarize``);
- ``critique``: a review composed from the rubric results (``shared.llm._offline_critique``).

``CompletionRequest.strategy`` names the algorithm (the prompt's strategy, see
``shared.llm.prompts``); empty runs the task kind's default.

Token counts are estimates (characters / 4, see ``shared.llm.text.estimate_tokens``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple, cast

from shared.llm._offline_critique import review
from shared.llm._offline_outline import outline
from shared.llm._offline_summarize import summarize
from shared.llm._offline_write import write
from shared.llm.contexts import CritiqueContext, SummarizeContext, WriteContext
from shared.llm.port import Completion, CompletionRequest, LanguageModel, ModelError, TaskKind
from shared.llm.text import clip, estimate_tokens

__all__ = ["ALGORITHMS", "OFFLINE_MODEL_NAME", "OFFLINE_PROVIDER", "OfflineModel"]

OFFLINE_PROVIDER: Final = "offline"
OFFLINE_MODEL_NAME: Final = "agentlog-extractive-1"


class _Algorithm(NamedTuple):
    task: TaskKind
    #: Recorded as the strategy version: bump it when the output changes for the same input.
    version: str
    # The casts trust the agents' request builders, which construct these TypedDicts; a
    # hand-made request without them is a programming error, not a transient failure.
    run: Callable[[Mapping[str, Any]], str]


ALGORITHMS: Final[Mapping[str, _Algorithm]] = {
    # 2: passage sentences are neutralised
    "tfidf-mmr-extractive": _Algorithm(
        "write", "tfidf-mmr-extractive/2", lambda c: write(cast(WriteContext, c))
    ),
    "term-outline": _Algorithm("write", "term-outline/1", lambda c: outline(cast(WriteContext, c))),
    "rubric-template": _Algorithm(
        "critique", "rubric-template/1", lambda c: review(cast(CritiqueContext, c))
    ),
    "centroid-extractive": _Algorithm(
        "summarize", "centroid-extractive/1", lambda c: summarize(cast(SummarizeContext, c))
    ),
}
_DEFAULTS: Final[Mapping[TaskKind, str]] = {
    "write": "tfidf-mmr-extractive",
    "critique": "rubric-template",
    "summarize": "centroid-extractive",
}


class OfflineModel(LanguageModel):
    """The default model: deterministic, local, free."""

    @property
    def provider(self) -> str:
        return OFFLINE_PROVIDER

    @property
    def name(self) -> str:
        return OFFLINE_MODEL_NAME

    def __repr__(self) -> str:
        return f"OfflineModel(name={self.name!r})"

    async def complete(self, request: CompletionRequest) -> Completion:
        """Run the request's algorithm off the event loop (it is CPU-bound); clip the result."""
        algorithm = _algorithm(request)
        text = await asyncio.to_thread(_run, algorithm, request)
        text = clip(text, request.max_output_chars)
        return Completion(
            text=text,
            provider=self.provider,
            model=self.name,
            strategy_version=algorithm.version,
            prompt_tokens=estimate_tokens(request.system, request.prompt),
            completion_tokens=estimate_tokens(text),
            tokens_estimated=True,
        )


def _algorithm(request: CompletionRequest) -> _Algorithm:
    name = request.strategy or _DEFAULTS[request.task]
    algorithm = ALGORITHMS.get(name)
    if algorithm is None or algorithm.task != request.task:
        known = ", ".join(n for n, a in ALGORITHMS.items() if a.task == request.task)
        raise ModelError(
            f"the offline model has no {request.task!r} strategy {name!r} (known: {known})",
            retryable=False,
        )
    return algorithm


def _run(algorithm: _Algorithm, request: CompletionRequest) -> str:
    try:
        return algorithm.run(request.context)
    except (KeyError, TypeError) as exc:
        raise ModelError(
            f"the offline model needs the structured context of a {request.task!r} request "
            f"(see shared.llm.contexts); missing or malformed: {exc}",
            retryable=False,
        ) from exc
