"""``MetricsServer``: serves one registry at ``GET /metrics`` from the service's event loop.

An asyncio server rather than ``prometheus_client.start_http_server``: that one runs in a
thread of its own, where the scrape-time collectors (consumer lag) would read the bus's state
while the event loop changes it; here a scrape runs between two steps of the loop. It is also
an ``async with`` resource like every other, so it closes with the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from shared.resource import AsyncResource
from shared.telemetry.metrics_settings import MetricsSettings

__all__ = ["MetricsServer"]

_log = logging.getLogger(__name__)

#: A scraper that sends nothing for this long is dropped.
_REQUEST_TIMEOUT_S = 5.0
_MAX_REQUEST_BYTES = 16 * 1024


class MetricsServer(AsyncResource):
    """The Prometheus endpoint; ``url`` names the bound address once started (None if off)."""

    def __init__(
        self, registry: CollectorRegistry, *, host: str = "127.0.0.1", port: int | None = 0
    ) -> None:
        """``port`` 0 binds any free port; ``None`` serves nothing."""
        self._registry = registry
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self.url: str | None = None

    @classmethod
    def from_settings(
        cls, registry: CollectorRegistry, settings: MetricsSettings | None = None
    ) -> MetricsServer:
        """The endpoint ``AGENTLOG_METRICS_PORT``/``AGENTLOG_METRICS_HOST`` ask for."""
        settings = settings or MetricsSettings()
        port = settings.bind_port if settings.enabled else None
        return cls(registry, host=settings.host, port=port)

    async def start(self) -> None:
        if self._port is None or self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=_MAX_REQUEST_BYTES
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}/metrics"
        _log.info("metrics at %s", self.url)

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
            await server.wait_closed()
        self.url = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _REQUEST_TIMEOUT_S)
            status, body = self._answer(head.split(b"\r\n", 1)[0])
            writer.write(
                b"HTTP/1.1 " + status + b"\r\n"
                b"Content-Type: " + CONTENT_TYPE_LATEST.encode() + b"\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                b"Connection: close\r\n\r\n" + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that sent no complete request gets nothing
        except ConnectionError:
            pass  # the scraper went away; nothing to tell it
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _answer(self, request_line: bytes) -> tuple[bytes, bytes]:
        parts = request_line.split()
        if len(parts) != 3:
            return b"400 Bad Request", b"bad request\n"
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if target not in (b"/metrics", b"/"):
            return b"404 Not Found", b"not found; metrics are at /metrics\n"
        if method not in (b"GET", b"HEAD"):
            return b"405 Method Not Allowed", b"GET only\n"
        body = generate_latest(self._registry)
        return b"200 OK", b"" if method == b"HEAD" else body
