"""Live updates by server-sent events: each stream sends ``change`` whenever what its page
shows has moved on, and the page's script fetches the fresh fragment (static/console.js).

The store is polled (``poll_s``) by each open stream: a cheap head read, not a fold. A stream
ends after ``live_lifetime_s``; the browser's EventSource reconnects on its own, so a
long-open tab never pins a connection forever and a restarted console is picked up again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from shared.console.app import console_of, identity_of
from shared.console.views import list_changes

__all__ = ["router"]

router = APIRouter()


def _stream(request: Request, probe: Callable[[], Awaitable[object]]) -> StreamingResponse:
    console = console_of(request)

    async def events() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        deadline = time.monotonic() + console.live_lifetime_s
        last: object = None
        count = 0
        while time.monotonic() < deadline and not await request.is_disconnected():
            token = await probe()
            if token != last:
                last = token
                count += 1
                yield f"event: change\ndata: {count}\n\n"
            await asyncio.sleep(console.poll_s)

    # no-cache and no buffering: proxies must pass each event on as it is written.
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@router.get("/live/workflows")
async def workflows(request: Request) -> StreamingResponse:
    """Changes to any recent workflow (the workflows and approvals pages)."""
    identity_of(request)
    store = console_of(request).store
    return _stream(request, lambda: list_changes(store))


@router.get("/live/workflows/{workflow_id}")
async def workflow(request: Request, workflow_id: str) -> StreamingResponse:
    """Changes to one workflow."""
    identity_of(request)
    store = console_of(request).store
    return _stream(request, lambda: store.stream_version(workflow_id))
