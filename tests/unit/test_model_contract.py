"""Both model adapters against the model contract, plus the remote adapter's own behaviour.

``OpenAICompatibleModel`` talks to a small fake of the chat-completions HTTP API served on
127.0.0.1 by this module: a stand-in for the remote service, not a mock of our code.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from shared.agents.writer import build_write_request
from shared.llm import (
    LanguageModel,
    ModelConfigError,
    ModelError,
    ModelTimeoutError,
    OfflineModel,
)
from shared.llm.factory import build_fallback_model, build_model
from shared.llm.openai_compat import OpenAICompatibleModel
from shared.llm.prompts import load_prompt
from shared.settings import Settings
from tests.contracts.model import ModelContract, sample_requests
from tests.unit._agent_samples import write_task

KEY = "sk-test-secret-0123456789"


@dataclass
class FakeChatServer:
    """A chat-completions endpoint whose behaviour the test chooses via ``mode``."""

    base_url: str = ""
    mode: str = "ok"
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if self.mode == "hang":
            await self.release.wait()  # never set: the client's timeout must fire
        if self.mode in {"500", "400", "401"}:
            message = f"failed for key {KEY}" if self.mode == "401" else "failed"
            return web.json_response({"error": {"message": message}}, status=int(self.mode))
        prompt = body["messages"][-1]["content"]
        cited = re.search(r"\[([^\]\s]+)\]", prompt)
        text = (
            ""
            if self.mode == "empty"
            else (
                f"A remote answer to a {len(prompt)}-character prompt, by {body['model']}."
                + (f" [{cited.group(1)}]" if cited else "")
            )
        )
        reply: dict[str, Any] = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text},
                }
            ],
        }
        if self.mode != "no-usage":
            reply["usage"] = {
                "prompt_tokens": len(prompt.split()),
                "completion_tokens": len(text.split()),
                "total_tokens": len(prompt.split()) + len(text.split()),
            }
        return web.json_response(reply)


@pytest.fixture(scope="module")
async def fake_server() -> AsyncIterator[FakeChatServer]:
    """The fake API, listening on an ephemeral local port for this module."""
    server = FakeChatServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.base_url = f"http://{host}:{port}/v1"
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()


@pytest.fixture
def fake(fake_server: FakeChatServer) -> FakeChatServer:
    """The fake API, reset to answer normally."""
    fake_server.mode = "ok"
    fake_server.requests.clear()
    fake_server.headers.clear()
    return fake_server


def _remote(fake: FakeChatServer, **kwargs: Any) -> OpenAICompatibleModel:
    return OpenAICompatibleModel(
        "fake-model",
        base_url=fake.base_url,
        environ={"AGENTLOG_LLM_API_KEY": KEY, "OPENAI_API_KEY": "sk-other"},
        max_retries=0,
        **kwargs,
    )


class TestOfflineModel(ModelContract):
    """The offline model keeps the contract."""

    @pytest.fixture
    async def model(self) -> AsyncIterator[LanguageModel]:
        """A fresh offline model."""
        async with OfflineModel() as model:
            yield model


class TestOpenAICompatibleModel(ModelContract):
    """The remote adapter keeps the contract against a chat-completions server."""

    @pytest.fixture
    async def model(self, fake: FakeChatServer) -> AsyncIterator[LanguageModel]:
        """A remote adapter pointed at the fake server."""
        async with _remote(fake) as model:
            yield model


async def test_request_shape_and_real_token_usage(fake: FakeChatServer) -> None:
    """System and user messages, temperature 0 and the bearer key go out; usage comes back."""
    request = sample_requests()[0]
    async with _remote(fake) as model:
        completion = await model.complete(request)
    sent = fake.requests[-1]
    assert sent["model"] == "fake-model"
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert sent["messages"][1]["content"] == request.prompt
    assert sent["temperature"] == 0.0
    assert sent["max_tokens"] >= request.max_output_chars // 4
    assert fake.headers[-1]["Authorization"] == f"Bearer {KEY}"
    assert not completion.tokens_estimated
    assert completion.prompt_tokens == len(request.prompt.split())
    assert completion.provider == "openai-compatible"
    assert (
        completion.strategy_version == "chat-completions/writer.report@1.0.0/tfidf-mmr-extractive"
    )


async def test_the_request_hash_and_raw_answer_are_recorded(fake: FakeChatServer) -> None:
    """The completion names the exact request (SHA-256 of its canonical JSON) and raw answer."""
    request = sample_requests()[0]
    async with _remote(fake) as model:
        completion = await model.complete(request)
    sent = fake.requests[-1]
    canonical = json.dumps(
        {k: sent[k] for k in ("model", "messages", "temperature", "max_tokens")},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert completion.request_hash == hashlib.sha256(canonical.encode()).hexdigest()
    assert completion.raw_completion is not None
    assert completion.raw_completion.startswith("A remote answer to a ")
    provenance = completion.provenance(request)
    assert provenance.request_hash == completion.request_hash
    assert provenance.raw_completion == completion.raw_completion
    assert (provenance.prompt_id, provenance.prompt_version) == ("writer.report", "1.0.0")
    assert provenance.prompt_hash == request.prompt_hash


async def test_the_same_request_hashes_the_same(fake: FakeChatServer) -> None:
    """Two identical requests share a hash; another prompt version changes it."""
    first, second = sample_requests()[0], sample_requests()[0]
    other = build_write_request(write_task(), prompt=load_prompt("writer", "2.0.0"))
    async with _remote(fake) as model:
        hashes = [(await model.complete(r)).request_hash for r in (first, second, other)]
    assert hashes[0] == hashes[1]
    assert hashes[0] != hashes[2]


async def test_an_empty_answer_reports_its_usage(fake: FakeChatServer) -> None:
    """An empty completion is a retryable error that still says what tokens it used."""
    fake.mode = "empty"
    async with _remote(fake) as model:
        with pytest.raises(ModelError) as caught:
            await model.complete(sample_requests()[0])
    assert caught.value.retryable
    assert caught.value.prompt_tokens > 0


async def test_missing_usage_is_estimated(fake: FakeChatServer) -> None:
    """Without a usage block, token counts are estimated and flagged as such."""
    fake.mode = "no-usage"
    async with _remote(fake) as model:
        completion = await model.complete(sample_requests()[1])
    assert completion.tokens_estimated
    assert completion.completion_tokens > 0


@pytest.mark.parametrize(("mode", "retryable"), [("500", True), ("400", False), ("empty", True)])
async def test_failures_become_model_errors(
    fake: FakeChatServer, mode: str, retryable: bool
) -> None:
    """Server errors are retryable, client errors are not, an empty answer is retryable."""
    fake.mode = mode
    async with _remote(fake) as model:
        with pytest.raises(ModelError) as caught:
            await model.complete(sample_requests()[0])
    assert caught.value.retryable is retryable


async def test_the_api_key_never_leaks(fake: FakeChatServer) -> None:
    """Neither repr nor error messages contain the key, even when the server echoes it."""
    fake.mode = "401"
    async with _remote(fake) as model:
        assert KEY not in repr(model)
        with pytest.raises(ModelError) as caught:
            await model.complete(sample_requests()[0])
    assert KEY not in str(caught.value)
    assert "HTTP 401" in str(caught.value)


async def test_a_silent_server_times_out(fake: FakeChatServer) -> None:
    """A server that never answers raises ModelTimeoutError after the configured timeout."""
    fake.mode = "hang"
    async with _remote(fake, timeout_s=0.3) as model:
        with pytest.raises(ModelTimeoutError):
            await model.complete(sample_requests()[0])


async def test_an_unreachable_server_is_a_retryable_error() -> None:
    """A refused connection is reported as retryable."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = OpenAICompatibleModel(
        "m", base_url=f"http://127.0.0.1:{port}/v1", environ={}, max_retries=0, timeout_s=5
    )
    async with model:
        with pytest.raises(ModelError) as caught:
            await model.complete(sample_requests()[0])
    assert caught.value.retryable


def test_the_key_comes_from_the_environment_only() -> None:
    """OpenAI itself needs a key from the environment; a custom server may go without."""
    with pytest.raises(ModelConfigError, match="AGENTLOG_LLM_API_KEY"):
        OpenAICompatibleModel("gpt-4o-mini", environ={})
    assert (
        OpenAICompatibleModel("gpt-4o-mini", environ={"OPENAI_API_KEY": "k"}).provider == "openai"
    )


def test_factory_builds_the_configured_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """llm_provider selects the adapter; an unknown provider is a configuration error."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert isinstance(build_model(Settings(llm_provider="offline")), OfflineModel)
    remote = build_model(
        Settings(llm_provider="openai", llm_model="llama3", llm_base_url="http://127.0.0.1:1/v1")
    )
    assert isinstance(remote, OpenAICompatibleModel)
    assert (remote.name, remote.provider) == ("llama3", "openai-compatible")
    with pytest.raises(ModelConfigError, match="unknown llm_provider"):
        build_model(Settings(llm_provider="telepathy"))


def test_factory_builds_the_fallback_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback is built from its own settings; without them there is none."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert build_fallback_model(Settings(llm_provider="offline")) is None
    remote = build_fallback_model(
        Settings(
            llm_provider="openai",
            llm_model="big",
            llm_base_url="http://127.0.0.1:1/v1",
            llm_fallback_model="small",
        )
    )
    assert isinstance(remote, OpenAICompatibleModel)
    assert (remote.name, remote.provider) == ("small", "openai-compatible")
    offline = build_fallback_model(Settings(llm_provider="openai", llm_fallback_provider="offline"))
    assert isinstance(offline, OfflineModel)
    with pytest.raises(ModelConfigError, match="unknown llm_fallback_provider"):
        build_fallback_model(Settings(llm_fallback_provider="telepathy"))
