"""Live updates by server-sent events: each stream sends ``change`` whenever what its page
shows has moved on, and the page's script fetches the fresh fragment (static/console.js).

Each open stream reads a cheap head (not a fold) every ``poll_s``; a workflow's stream also
wakes at once when that workflow is appended to (the store's ``watch``: with Postgres, one
listening session for the whole console, however many tabs are open). A stream ends after
``live_lifetime_s``; the browser's EventSource reconnects on its own, so a long-open tab never
pins a connection forever and a restarted console is picked up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from shared.console.app import console_of, identity_of
from shared.console.views import list_changes

__all__ = ["router"]

router = APIRouter()


def _stream(
    request: Request,
    probe: Callable[[], Awaitable[object]],
    watch: Callable[[], AbstractAsyncContextManager[asyncio.Event]] | None = None,
) -> StreamingResponse:
    console = console_of(request)

    async def events() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        deadline = time.monotonic() + console.live_lifetime_s
        last: object = None
        count = 0
        async with watch() if watch else _never_set() as appended:
            while time.monotonic() < deadline and not await request.is_disconnected():
                appended.clear()  # before the probe: an append during it sets it again
                token = await probe()
                if token != last:
                    last = token
                    count += 1
                    yield f"event: change\ndata: {count}\n\n"
                # poll_s still bounds the wait: it is how often a closed tab is noticed.
                wait_s = min(console.poll_s, max(0.0, deadline - time.monotonic()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(appended.wait(), wait_s)

    # no-cache and no buffering: proxies must pass each event on as it is written.
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@contextlib.asynccontextmanager
async def _never_set() -> AsyncIterator[asyncio.Event]:
    yield asyncio.Event()


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
    return _stream(
        request, lambda: store.stream_version(workflow_id), lambda: store.watch(workflow_id)
    )
