"""A fake OpenAI-compatible provider whose errors repeat the caller's API key.

It is a real HTTP server on 127.0.0.1 (its own thread and event loop, so service processes
and sync test code can reach it whatever the test's loop is doing): a stand-in for a remote
provider with a careless error format, not a mock of our code. ``mode`` picks the answer:

* ``"401"`` / ``"403"``: the key is refused, and the error message repeats it in full;
* ``"500"``: a server error whose message repeats the key;
* ``"429"``: a rate limit with a ``retry-after`` header (``retry_after`` seconds), echoing too.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["EchoingProvider"]

_MESSAGES = {
    401: "Incorrect API key provided: {key}. You can find your API key in your account.",
    403: "The API key {key} is not allowed to use this model.",
    429: "Rate limit reached for key {key}; slow down.",
    500: "Internal error while checking the request signed with {key}.",
}


@dataclass
class EchoingProvider:
    """The fake provider; ``start()`` listens on an ephemeral port, ``stop()`` ends it."""

    mode: str = "401"
    retry_after: str = "0.2"
    base_url: str = ""
    #: Every bearer token received, in order.
    keys_seen: list[str] = field(default_factory=list)
    #: Every error body sent, in order (proof the key really went back to the client).
    bodies_sent: list[str] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    def start(self) -> str:
        """Serve in a background thread; returns the ``.../v1`` base URL."""
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._listen())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=serve, name="echoing-provider", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake provider did not start")
        return self.base_url

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is None or self._thread is None:
            return
        runner = self._runner
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = self._thread = None

    async def _listen(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}/v1"

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.keys_seen.append(key)
        status = int(self.mode)
        message = _MESSAGES[status].format(key=key)
        body: dict[str, Any] = {
            "error": {"message": message, "type": "invalid_request_error", "code": status}
        }
        headers = {"retry-after": self.retry_after} if status == 429 else {}
        self.bodies_sent.append(message)
        return web.json_response(body, status=status, headers=headers)
