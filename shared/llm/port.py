"""The language-model port: one request in, one completion out.

Adapters: ``OfflineModel`` (deterministic extractive algorithms, the default) and
``OpenAICompatibleModel`` (OpenAI, vLLM, Ollama, llama.cpp). Both pass the same contract
suite (tests/contracts/model.py).

A request carries the prompt a remote model reads *and* the structured inputs (``context``)
the offline model computes from, so an agent builds one request whichever adapter runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any, Literal, Self

from schemas.messages import Provenance

__all__ = [
    "Completion",
    "CompletionRequest",
    "LanguageModel",
    "ModelConfigError",
    "ModelError",
    "ModelTimeoutError",
    "TaskKind",
]

TaskKind = Literal["write", "critique", "summarize"]


class ModelError(RuntimeError):
    """The model could not answer; ``retryable`` says whether the same request may succeed.

    ``retry_after_s`` is how long the provider asked callers to wait first (its
    ``retry-after`` header on a rate limit or an overload), when it said.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after_s: float | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        # A failed attempt may still have been billed (an empty answer reports its usage).
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        #: What the failed attempt used and cost, set by the metering wrapper that knows the
        #: model and its price (``shared.llm.metering``); the worker's TaskFailure carries it.
        self.provenance: Provenance | None = None


class ModelTimeoutError(ModelError):
    """The model did not answer within the adapter's timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class ModelConfigError(ValueError):
    """The model cannot be built from the given settings (unknown provider, missing key)."""


@dataclass(frozen=True)
class CompletionRequest:
    """What an agent asks of a model.

    ``system`` and ``prompt`` are for models that read; ``context`` holds the same inputs as
    plain data (JSON-like) for the offline model. ``max_output_chars`` bounds the answer.
    """

    task: TaskKind
    system: str
    prompt: str
    context: Mapping[str, Any] = field(default_factory=dict)
    max_output_chars: int = 8_000
    #: The versioned prompt the request was built from (``shared.llm.prompts``); results
    #: record all three.
    prompt_id: str | None = None
    prompt_version: str | None = None
    prompt_hash: str | None = None
    #: The offline algorithm to run (the prompt's strategy); empty: the task kind's default.
    strategy: str = ""

    def __post_init__(self) -> None:
        if self.max_output_chars < 1:
            raise ValueError("max_output_chars must be positive")
        # Read-only view: a model must not change what the agent will read afterwards.
        object.__setattr__(self, "context", MappingProxyType(dict(self.context)))


@dataclass(frozen=True)
class Completion:
    """A model's answer and what it cost. Token counts are estimates when ``tokens_estimated``."""

    text: str
    provider: str
    model: str
    strategy_version: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_estimated: bool = True
    #: Set by the metering wrapper from the operator's price table; 0 when unpriced.
    cost_usd: float = 0.0
    #: A remote provider's request digest and its raw answer (before clipping), recorded so
    #: replay, rollback and fork never need to call the model again for this step.
    request_hash: str | None = None
    raw_completion: str | None = None

    def provenance(self, request: CompletionRequest | None = None) -> Provenance:
        """The provenance record a result message carries; ``request`` adds its prompt."""
        return Provenance(
            provider=self.provider,
            model=self.model,
            strategy_version=self.strategy_version,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            tokens_estimated=self.tokens_estimated,
            cost_usd=self.cost_usd,
            prompt_id=request.prompt_id if request else None,
            prompt_version=request.prompt_version if request else None,
            prompt_hash=request.prompt_hash if request else None,
            request_hash=self.request_hash,
            raw_completion=self.raw_completion,
        )


class LanguageModel(ABC):
    """Something that completes agent requests. Use as ``async with`` to release resources."""

    @property
    @abstractmethod
    def provider(self) -> str:
        """The provider name recorded in provenance, e.g. ``offline`` or ``openai``."""

    @property
    @abstractmethod
    def name(self) -> str:
        """The model name recorded in provenance."""

    @abstractmethod
    async def complete(self, request: CompletionRequest) -> Completion:
        """Answer one request; raises ``ModelError`` when the model cannot."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook; most adapters hold nothing
        """Release connections; the default holds none."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
