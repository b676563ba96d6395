"""The console's pages: workflows, a workflow (timeline, branches, ledger), the state at an
event, approvals, a diff, dead letters, a trace; and signing in and out."""

from __future__ import annotations

import json
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shared.console.access import new_session
from shared.console.app import Forbidden, console_of, identity_of, set_session_cookie
from shared.console.trace import trace_lines
from shared.console.views import STATUSES, workflow_page, workflow_rows
from shared.control_commands import pending_approvals
from shared.readside.queries import NotFoundError, diff, state_at

__all__ = ["router"]

router = APIRouter()

_NOTICES = {
    "submitted": "goal submitted",
    "approved": "approval sent",
    "denied": "denial sent",
    "cancelled": "cancel requested",
    "rolledback": "rollback requested: the new run appears below as it happens",
    "forked": "fork requested",
}


@router.get("/")
async def home() -> Response:
    """The workflows page."""
    return RedirectResponse("/workflows", status_code=303)


@router.get("/signin")
async def signin_form(request: Request, next: str = "/workflows") -> Response:
    """The sign-in form (development mode has none: everyone is the operator)."""
    console = console_of(request)
    if console.access.open:
        return RedirectResponse("/workflows", status_code=303)
    return console.render(request, "signin.html", {"next": _local(next)})


@router.post("/signin")
async def signin(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    csrf: str = Form(""),
    next: str = Form("/workflows"),
) -> Response:
    """Check the password; a new session (and CSRF token) on success."""
    console = console_of(request)
    if csrf != request.state.session.csrf:
        raise Forbidden("the form expired: reload the page and sign in again")
    identity = console.access.sign_in(username, password)
    if identity is None:
        context = {"next": _local(next), "error": "wrong user name or password"}
        return console.render(request, "signin.html", context, 401)
    response = RedirectResponse(_local(next), status_code=303)
    set_session_cookie(response, console.access, new_session(console.access, identity))
    return response


@router.post("/signout")
async def signout(request: Request, csrf: str = Form("")) -> Response:
    """End the session."""
    console = console_of(request)
    if csrf != request.state.session.csrf:
        raise Forbidden("the form expired: reload the page")
    response = RedirectResponse("/signin", status_code=303)
    set_session_cookie(response, console.access, new_session(console.access))
    return response


def _local(target: str) -> str:
    """Only a path on this console: never an open redirect to another site (browsers read
    ``//host`` and ``/\\host`` as another host)."""
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/workflows"


@router.get("/workflows")
async def workflows(request: Request, status: str = "", notice: str = "") -> HTMLResponse:
    """Recent workflows, filtered by status, updated live; and the submit form."""
    identity_of(request)
    console = console_of(request)
    chosen = status if status in STATUSES else ""
    context = {
        "rows": await workflow_rows(console.store, chosen or None),
        "status": chosen,
        "statuses": STATUSES,
        "notice": _NOTICES.get(notice),
    }
    return console.render(request, "workflows.html", context)


@router.get("/workflows/rows")
async def workflow_rows_fragment(request: Request, status: str = "") -> HTMLResponse:
    """The workflows table's rows, for live updates."""
    identity_of(request)
    console = console_of(request)
    rows = await workflow_rows(console.store, status if status in STATUSES else None)
    return console.render(request, "_workflow_rows.html", {"rows": rows})


@router.get("/workflows/{workflow_id}")
async def workflow(request: Request, workflow_id: str, notice: str = "") -> HTMLResponse:
    """A workflow: status, what it waits for, timeline, abandoned branches, ledger."""
    identity_of(request)
    console = console_of(request)
    page = await workflow_page(console.store, workflow_id)
    context = {"page": page, "notice": _NOTICES.get(notice)}
    return console.render(request, "workflow.html", context, 200 if page.exists else 404)


@router.get("/workflows/{workflow_id}/live")
async def workflow_live(request: Request, workflow_id: str) -> HTMLResponse:
    """The workflow page's changing part, for live updates."""
    identity_of(request)
    console = console_of(request)
    page = await workflow_page(console.store, workflow_id)
    return console.render(request, "_workflow_live.html", {"page": page})


@router.get("/workflows/{workflow_id}/state/{version}")
async def state(request: Request, workflow_id: str, version: int) -> HTMLResponse:
    """The workflow as it stood right after one event, and that event in full."""
    identity_of(request)
    console = console_of(request)
    try:
        info = await state_at(console.store, workflow_id, version)
    except NotFoundError as exc:
        return console.render(request, "error.html", {"message": str(exc)}, 404)
    page = await workflow_page(console.store, workflow_id)
    row = next(r for r in page.rows if r.version == version)
    data = json.dumps(row.detail.data if row.detail else {}, indent=2, ensure_ascii=False)
    sent = row.detail.sent if row.detail else None
    sent_text = None if sent is None else json.dumps(sent, indent=2, ensure_ascii=False)
    context = {"info": info, "row": row, "data": data, "sent": sent_text, "page": page}
    return console.render(request, "state.html", context)


@router.get("/workflows/{workflow_id}/trace")
async def trace(request: Request, workflow_id: str) -> HTMLResponse:
    """The workflow's spans as a tree, when tracing recorded any."""
    identity_of(request)
    console = console_of(request)
    lines, note = trace_lines(console.state_dir, workflow_id)
    context = {"workflow_id": workflow_id, "lines": lines, "note": note}
    return console.render(request, "trace.html", context)


@router.get("/approvals")
async def approvals(request: Request, notice: str = "") -> HTMLResponse:
    """What waits for a human, oldest request first, with approve and deny."""
    identity_of(request)
    console = console_of(request)
    waiting = await pending_approvals(console.store)
    context = {"waiting": waiting, "notice": _NOTICES.get(notice)}
    return console.render(request, "approvals.html", context)


@router.get("/approvals/rows")
async def approval_rows(request: Request) -> HTMLResponse:
    """The approvals list, for live updates."""
    identity_of(request)
    console = console_of(request)
    waiting = await pending_approvals(console.store)
    return console.render(request, "_approval_rows.html", {"waiting": waiting})


@router.get("/diff")
async def diff_page(request: Request, a: str = "", b: str = "") -> HTMLResponse:
    """Where two runs part, and what differs after."""
    identity_of(request)
    console = console_of(request)
    context: dict[str, Any] = {"a": a, "b": b, "diff": None, "error": None}
    if a and b:
        records_a, records_b = await console.store.read(a), await console.store.read(b)
        missing = [w for w, r in ((a, records_a), (b, records_b)) if not r]
        if missing:
            context["error"] = f"no workflow {missing[0]!r}"
        else:
            context["diff"] = diff(records_a, records_b)
    return console.render(request, "diff.html", context)


@router.get("/dead-letters")
async def dead_letters(request: Request) -> HTMLResponse:
    """Records refused on every topic, newest first, with their reasons."""
    identity_of(request)
    console = console_of(request)
    error = None
    try:
        rows = await console.dead_letters.recent(200)
    except (OSError, TimeoutError, KafkaError) as exc:
        rows, error = [], f"cannot read the dead-letter topics: {exc or type(exc).__name__}"
    return console.render(request, "dead_letters.html", {"rows": rows, "error": error})
