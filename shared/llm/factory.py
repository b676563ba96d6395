"""Build the configured language models: the one place that reads the LLM settings."""

from __future__ import annotations

from shared.llm.offline import OfflineModel
from shared.llm.openai_compat import OpenAICompatibleModel
from shared.llm.port import LanguageModel, ModelConfigError
from shared.settings import Settings

__all__ = ["PROVIDERS", "build_fallback_model", "build_model"]

PROVIDERS = ("offline", "openai")


def build_model(settings: Settings) -> LanguageModel:
    """``OfflineModel`` for ``llm_provider=offline``; ``OpenAICompatibleModel`` for ``openai``.

    The remote model's request timeout is the task timeout: an answer that arrives later is
    one the supervisor has already given up on.
    """
    return _build(
        "llm_provider", settings.llm_provider, settings.llm_model, settings.llm_base_url, settings
    )


def build_fallback_model(settings: Settings) -> LanguageModel | None:
    """The model a task moves to after its retries (``profile="fallback"``); None if unset.

    Either setting alone is enough: ``llm_fallback_provider`` defaults to ``llm_provider`` and
    ``llm_fallback_model`` to ``llm_model``. The base URL is the primary's only when both use
    the same provider; a different provider gets its public endpoint.
    """
    if not (settings.llm_fallback_provider or settings.llm_fallback_model):
        return None
    provider = settings.llm_fallback_provider or settings.llm_provider
    same_provider = _normal(provider) == _normal(settings.llm_provider)
    return _build(
        "llm_fallback_provider",
        provider,
        settings.llm_fallback_model or settings.llm_model,
        settings.llm_base_url if same_provider else None,
        settings,
    )


def _normal(provider: str) -> str:
    return provider.strip().lower()


def _build(
    setting: str, provider: str, model: str, base_url: str | None, settings: Settings
) -> LanguageModel:
    kind = _normal(provider)
    if kind == "offline":
        return OfflineModel()
    if kind == "openai":
        return OpenAICompatibleModel(
            model, base_url=base_url or None, timeout_s=settings.task_timeout_s
        )
    raise ModelConfigError(f"unknown {setting} {provider!r}: choose one of {', '.join(PROVIDERS)}")
