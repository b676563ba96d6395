"""``OfflineModel``: deterministic extractive algorithms behind the language-model port.

No network, no weights, no randomness: the same request always yields the same text, which
makes the whole system reproducible in tests and demos. It reads ``request.context`` (see
``shared.llm.contexts``), not the prompt.

- ``write``: TF-IDF + MMR extractive composition, or feedback-driven revision
  (``shared.llm._offline_write``);
- ``summarize``: centroid-scored extraction under a character budget
  (``shared.llm._offline_summarize``);
- ``critique``: a review composed from the rubric results (``shared.llm._offline_critique``).

Token counts are estimates (characters / 4, see ``shared.llm.text.estimate_tokens``).
"""

from __future__ import annotations

import asyncio
from typing import Final, cast

from shared.llm._offline_critique import review
from shared.llm._offline_summarize import summarize
from shared.llm._offline_write import write
from shared.llm.contexts import CritiqueContext, SummarizeContext, WriteContext
from shared.llm.port import Completion, CompletionRequest, LanguageModel, ModelError, TaskKind
from shared.llm.text import clip, estimate_tokens

__all__ = ["OFFLINE_MODEL_NAME", "OFFLINE_PROVIDER", "OfflineModel"]

OFFLINE_PROVIDER: Final = "offline"
OFFLINE_MODEL_NAME: Final = "agentlog-extractive-1"
# Bump the version when an algorithm's output changes for the same input.
_STRATEGIES: Final[dict[TaskKind, str]] = {
    "write": "tfidf-mmr-extractive/2",  # 2: passage sentences are neutralised
    "critique": "rubric-template/1",
    "summarize": "centroid-extractive/1",
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
        """Run the task's algorithm off the event loop (it is CPU-bound) and clip the result."""
        text = await asyncio.to_thread(_run, request)
        text = clip(text, request.max_output_chars)
        return Completion(
            text=text,
            provider=self.provider,
            model=self.name,
            strategy_version=_STRATEGIES[request.task],
            prompt_tokens=estimate_tokens(request.system, request.prompt),
            completion_tokens=estimate_tokens(text),
            tokens_estimated=True,
        )


def _run(request: CompletionRequest) -> str:
    # The casts trust the agents' request builders, which construct these TypedDicts; a
    # hand-made request without them is a programming error, not a transient failure.
    try:
        if request.task == "write":
            return write(cast(WriteContext, request.context))
        if request.task == "summarize":
            return summarize(cast(SummarizeContext, request.context))
        return review(cast(CritiqueContext, request.context))
    except (KeyError, TypeError) as exc:
        raise ModelError(
            f"the offline model needs the structured context of a {request.task!r} request "
            f"(see shared.llm.contexts); missing or malformed: {exc}",
            retryable=False,
        ) from exc
