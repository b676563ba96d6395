"""The language-model port and its adapters.

``LanguageModel`` is the port; ``OfflineModel`` (deterministic, extractive) and
``OpenAICompatibleModel`` (OpenAI, vLLM, Ollama, llama.cpp) are its adapters; ``build_model``
picks one from settings.
"""

from shared.llm.factory import build_model
from shared.llm.offline import OfflineModel
from shared.llm.openai_compat import OpenAICompatibleModel
from shared.llm.port import (
    Completion,
    CompletionRequest,
    LanguageModel,
    ModelConfigError,
    ModelError,
    ModelTimeoutError,
    TaskKind,
)

__all__ = [
    "Completion",
    "CompletionRequest",
    "LanguageModel",
    "ModelConfigError",
    "ModelError",
    "ModelTimeoutError",
    "OfflineModel",
    "OpenAICompatibleModel",
    "TaskKind",
    "build_model",
]
