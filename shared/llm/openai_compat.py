"""``OpenAICompatibleModel``: chat completions on OpenAI or any compatible server.

Works with OpenAI itself and with servers that speak its chat-completions API (vLLM, Ollama,
llama.cpp's server, LiteLLM): point ``base_url`` at them, e.g. ``http://127.0.0.1:11434/v1``.

The API key comes only from the environment (``AGENTLOG_LLM_API_KEY``, else
``OPENAI_API_KEY``); it is never a setting, never logged, never in ``repr`` or error text.
Local servers usually need no key; then a placeholder is sent. The adapter registers the key
with the process-wide redactor, so even the SDK's own exception text (which may echo a
server's error body, key included) is scrubbed wherever it is logged or recorded.

Errors: a rejected key (HTTP 401/403) is not retryable and says so plainly; rate limits
(429), timeouts and server errors (5xx) are retryable and carry the server's ``retry-after``
as ``ModelError.retry_after_s``. The SDK itself also retries ``max_retries`` times, honouring
``retry-after``, before the adapter sees the error.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import urlsplit

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from shared.llm.port import (
    Completion,
    CompletionRequest,
    LanguageModel,
    ModelConfigError,
    ModelError,
    ModelTimeoutError,
)
from shared.llm.text import clip, estimate_tokens
from shared.runtime.redaction import redact, register_secret, url_password_forms

__all__ = [
    "API_KEY_ENV_VARS",
    "OpenAICompatibleModel",
    "request_hash",
    "resolve_api_key",
    "retry_after_seconds",
    "strategy_version",
]

API_KEY_ENV_VARS: Final = ("AGENTLOG_LLM_API_KEY", "OPENAI_API_KEY")
_NO_KEY: Final = "no-key-required"
# Provenance.raw_completion's limit; a chat answer is far below it (max_tokens is bounded).
_RAW_COMPLETION_CHARS: Final = 200_000
# Statuses worth retrying as-is: timeout, conflict, rate limit, and server-side failures.
_RETRYABLE_STATUS: Final = frozenset({408, 409, 429})
# The provider refused the credential: the same request fails the same way until someone
# changes the key, so retrying only burns attempts (and repeats the refusal in the logs).
_REJECTED_KEY_STATUS: Final = frozenset({401, 403})


def resolve_api_key(environ: Mapping[str, str], *, base_url: str | None) -> str:
    """The API key from the environment; a placeholder for a custom server that needs none."""
    for name in API_KEY_ENV_VARS:
        value = environ.get(name, "").strip()
        if value:
            return value
    if base_url is None:
        raise ModelConfigError(
            "llm_provider 'openai' without llm_base_url needs an API key: "
            f"set {' or '.join(API_KEY_ENV_VARS)}"
        )
    return _NO_KEY


class OpenAICompatibleModel(LanguageModel):
    """A chat-completions client with timeouts and errors mapped to ``ModelError``."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 1,
        temperature: float = 0.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._model = model
        self._base_url = base_url
        self._temperature = temperature
        self._timeout_s = timeout_s
        # The key lives only inside the SDK client, which sends it as a bearer header.
        key = resolve_api_key(os.environ if environ is None else environ, base_url=base_url)
        self._key_to_redact = key if key != _NO_KEY else None
        register_secret(self._key_to_redact)
        for password in url_password_forms(base_url or ""):
            register_secret(password)
        self._client = AsyncOpenAI(
            api_key=key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    @property
    def provider(self) -> str:
        return "openai" if self._base_url is None else "openai-compatible"

    @property
    def name(self) -> str:
        return self._model

    def __repr__(self) -> str:
        return f"OpenAICompatibleModel(model={self._model!r}, base_url={self._base_url!r})"

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()

    async def complete(self, request: CompletionRequest) -> Completion:
        """One chat completion: the request's system and user prompts, temperature 0."""
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": request.system},
            {"role": "user", "content": request.prompt},
        ]
        # ~4 characters per token; a little slack, the text is clipped below anyway.
        max_tokens = max(16, math.ceil(request.max_output_chars / 3))
        digest = request_hash(self._model, messages, self._temperature, max_tokens)
        try:
            response = await self._client.chat.completions.create(
                model=self._model,
                messages=messages,
                temperature=self._temperature,
                max_tokens=max_tokens,
            )
        except openai.APITimeoutError as exc:
            raise ModelTimeoutError(
                f"{self._where()} did not answer within {self._timeout_s:g} s"
            ) from exc
        except openai.APIConnectionError as exc:
            raise ModelError(
                f"cannot reach {self._where()}: {self._redact(exc)}", retryable=True
            ) from exc
        except openai.APIStatusError as exc:
            if exc.status_code in _REJECTED_KEY_STATUS:
                # No server text here: it is the part that may echo the key.
                raise ModelError(
                    f"the model provider rejected the API key for model {self._model!r} "
                    f"at {self._host()} (HTTP {exc.status_code}); "
                    f"check {' or '.join(API_KEY_ENV_VARS)}",
                    retryable=False,
                ) from exc
            retryable = exc.status_code in _RETRYABLE_STATUS or exc.status_code >= 500
            retry_after_s = retry_after_seconds(exc.response.headers) if retryable else None
            wait = f" (retry after {retry_after_s:g} s)" if retry_after_s is not None else ""
            raise ModelError(
                f"{self._where()} answered HTTP {exc.status_code}{wait}: {self._redact(exc)}",
                retryable=retryable,
                retry_after_s=retry_after_s,
            ) from exc
        except openai.OpenAIError as exc:
            raise ModelError(
                f"{self._where()} failed: {self._redact(exc)}", retryable=False
            ) from exc
        content = response.choices[0].message.content if response.choices else None
        usage = response.usage
        if not content or not content.strip():
            raise ModelError(
                f"{self._where()} returned an empty completion",
                retryable=True,
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
            )
        text = clip(content.strip(), request.max_output_chars)
        return Completion(
            text=text,
            provider=self.provider,
            model=response.model or self._model,
            strategy_version=strategy_version(request),
            prompt_tokens=usage.prompt_tokens
            if usage
            else estimate_tokens(request.system, request.prompt),
            completion_tokens=usage.completion_tokens if usage else estimate_tokens(text),
            tokens_estimated=usage is None,
            request_hash=digest,
            raw_completion=content[:_RAW_COMPLETION_CHARS],
        )

    def _where(self) -> str:
        return f"model {self._model!r} at {self._host()}"

    def _host(self) -> str:
        """Where requests go, without any credentials a base URL may carry."""
        if self._base_url is None:
            return "api.openai.com"
        parts = urlsplit(self._base_url)
        host = parts.hostname or "?"
        try:
            port = parts.port
        except ValueError:
            port = None
        return f"{host}:{port}" if port else host

    def _redact(self, exc: BaseException) -> str:
        message = redact(str(exc))
        if self._key_to_redact:
            # Keys too short for the process-wide redactor are still kept out of this text.
            message = message.replace(self._key_to_redact, "***")
        return message[:300]


def request_hash(
    model: str, messages: Sequence[Mapping[str, object]], temperature: float, max_tokens: int
) -> str:
    """SHA-256 of the request's canonical JSON (sorted keys, no spaces, UTF-8).

    The same model, messages, temperature and token limit always give the same digest, so a
    recorded step names exactly the request that produced it.
    """
    canonical = json.dumps(
        {
            "max_tokens": max_tokens,
            "messages": [dict(m) for m in messages],
            "model": model,
            "temperature": temperature,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def strategy_version(request: CompletionRequest) -> str:
    """What a remote completion records as its strategy: the prompt, version and strategy."""
    prompt = request.prompt_id or f"{request.task}-prompt"
    version = f"@{request.prompt_version}" if request.prompt_version else ""
    strategy = f"/{request.strategy}" if request.strategy else ""
    return f"chat-completions/{prompt}{version}{strategy}"


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a ``retry-after-ms`` or ``retry-after`` header asks for; None if absent or bad.

    ``retry-after`` may be seconds or an HTTP date; a negative wait counts as none.
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None
