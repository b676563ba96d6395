"""Build the configured language model: the one place that reads the LLM settings."""

from __future__ import annotations

from shared.llm.offline import OfflineModel
from shared.llm.openai_compat import OpenAICompatibleModel
from shared.llm.port import LanguageModel, ModelConfigError
from shared.settings import Settings

__all__ = ["PROVIDERS", "build_model"]

PROVIDERS = ("offline", "openai")


def build_model(settings: Settings) -> LanguageModel:
    """``OfflineModel`` for ``llm_provider=offline``; ``OpenAICompatibleModel`` for ``openai``.

    The remote model's request timeout is the task timeout: an answer that arrives later is
    one the supervisor has already given up on.
    """
    provider = settings.llm_provider.strip().lower()
    if provider == "offline":
        return OfflineModel()
    if provider == "openai":
        return OpenAICompatibleModel(
            settings.llm_model,
            base_url=settings.llm_base_url or None,
            timeout_s=settings.task_timeout_s,
        )
    raise ModelConfigError(
        f"unknown llm_provider {settings.llm_provider!r}: choose one of {', '.join(PROVIDERS)}"
    )
