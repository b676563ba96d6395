"""The language-model port and its adapters.

``LanguageModel`` is the port; ``OfflineModel`` (deterministic, extractive) and
``OpenAICompatibleModel`` (OpenAI, vLLM, Ollama, llama.cpp) are its adapters; ``build_model``
picks one from settings. ``shared.llm.prompts`` holds the agents' versioned prompts and
``shared.llm.metering`` prices every call. The package exports only what needs no HTTP client,
so pure code (the domain, the agents' parsers) can import from it without loading the openai
SDK; import ``shared.llm.openai_compat`` and ``shared.llm.factory`` directly for those.
"""

from shared.llm.offline import OfflineModel
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
    "TaskKind",
]
