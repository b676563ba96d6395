"""The console's writes: submit, approve, deny, cancel, roll back, fork.

Every POST checks, in order: a signed-in user (401), the form's CSRF token against the
session's (403), the user's role (403, so a viewer changes nothing), then the store
(``shared.commands`` checks: a refusal is a 409 page naming why, nothing published).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote
from uuid import uuid4

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from schemas.messages import (
    ApprovalDecision,
    CancelWorkflow,
    ForkWorkflow,
    GoalSubmitted,
    RollbackWorkflow,
)
from shared.auth import CredentialError
from shared.commands import RefusedError
from shared.console.access import Identity
from shared.console.app import Forbidden, console_of, identity_of

__all__ = ["router"]

router = APIRouter()


async def _checked(request: Request, *, operate: bool) -> tuple[Identity, FormData]:
    """The user and their form, once the CSRF token and the role allow the change."""
    identity = identity_of(request)
    form = await request.form()
    if form.get("csrf") != request.state.session.csrf:
        raise Forbidden("the form's security token does not match: reload the page and retry")
    allowed = identity.role.may_operate if operate else identity.role.may_decide
    if not allowed:
        raise Forbidden(f"{identity.name} ({identity.role}) may not change anything here")
    return identity, form


async def _attempt(request: Request, publish: Callable[[], Awaitable[str]], then: str) -> Response:
    """Run a write; a refusal or an invalid form is a page saying why."""
    console = console_of(request)
    try:
        await publish()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return console.render(request, "error.html", {"message": f"invalid: {problems}"}, 422)
    except RefusedError as exc:
        return console.render(request, "error.html", {"message": str(exc)}, 409)
    except CredentialError as exc:
        message = f"cannot sign as {identity_of(request).principal}: {exc}"
        return console.render(request, "error.html", {"message": message}, 503)
    except (OSError, TimeoutError, KafkaError) as exc:
        message = f"cannot reach the broker: {exc or type(exc).__name__}"
        return console.render(request, "error.html", {"message": message}, 503)
    return RedirectResponse(then, status_code=303)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _lines(form: FormData, name: str) -> list[str]:
    return [line.strip() for line in _text(form, name).splitlines() if line.strip()]


def _number(form: FormData, name: str) -> int | None:
    text = _text(form, name)
    return int(text) if text.lstrip("-").isdigit() else None


def _workflow_url(workflow_id: str, notice: str) -> str:
    return f"/workflows/{quote(workflow_id, safe='')}?notice={notice}"


@router.post("/workflows")
async def submit(request: Request) -> Response:
    """Submit a goal, signed as the user."""
    identity, form = await _checked(request, operate=True)
    actions = console_of(request).actions
    fields: dict[str, Any] = {
        "goal": _text(form, "goal"),
        "constraints": _lines(form, "constraints"),
        "approval_required": [s for s in form.getlist("approve") if isinstance(s, str)],
        "requested_by": identity.name,
    }
    if _text(form, "workflow_id"):
        fields["workflow_id"] = _text(form, "workflow_id")
    holder: dict[str, str] = {}

    async def publish() -> str:
        goal = GoalSubmitted(**fields)
        holder["id"] = goal.workflow_id
        return await actions.submit(identity, goal)

    response = await _attempt(request, publish, "")
    if isinstance(response, RedirectResponse):
        return RedirectResponse(_workflow_url(holder["id"], "submitted"), status_code=303)
    return response


@router.post("/workflows/{workflow_id}/approve")
async def approve(request: Request, workflow_id: str) -> Response:
    """Grant what the workflow waits for."""
    identity, form = await _checked(request, operate=False)
    actions = console_of(request).actions
    return await _attempt(
        request,
        lambda: actions.decide(
            identity,
            ApprovalDecision(
                workflow_id=workflow_id,
                decision="grant",
                request_id=_text(form, "request_id") or None,
                option=_text(form, "option") or None,
                comment=_text(form, "comment"),
            ),
        ),
        _workflow_url(workflow_id, "approved"),
    )


@router.post("/workflows/{workflow_id}/deny")
async def deny(request: Request, workflow_id: str) -> Response:
    """Deny what the workflow waits for: it fails with the reason."""
    identity, form = await _checked(request, operate=False)
    actions = console_of(request).actions
    return await _attempt(
        request,
        lambda: actions.decide(
            identity,
            ApprovalDecision(
                workflow_id=workflow_id,
                decision="deny",
                request_id=_text(form, "request_id") or None,
                comment=_text(form, "reason") or f"denied by {identity.name}",
            ),
        ),
        _workflow_url(workflow_id, "denied"),
    )


@router.post("/workflows/{workflow_id}/cancel")
async def cancel(request: Request, workflow_id: str) -> Response:
    """The kill-switch."""
    identity, form = await _checked(request, operate=True)
    actions = console_of(request).actions
    reason = _text(form, "reason") or f"cancelled by {identity.name}"
    return await _attempt(
        request,
        lambda: actions.cancel(identity, CancelWorkflow(workflow_id=workflow_id, reason=reason)),
        _workflow_url(workflow_id, "cancelled"),
    )


@router.post("/workflows/{workflow_id}/rollback")
async def rollback(request: Request, workflow_id: str) -> Response:
    """Roll the workflow back to an event."""
    identity, form = await _checked(request, operate=True)
    actions = console_of(request).actions
    return await _attempt(
        request,
        lambda: actions.rollback(
            identity,
            RollbackWorkflow(
                workflow_id=workflow_id,
                to_version=_number(form, "to_version") or 0,
                reason=_text(form, "reason") or f"rolled back by {identity.name}",
            ),
        ),
        _workflow_url(workflow_id, "rolledback"),
    )


@router.post("/workflows/{workflow_id}/fork")
async def fork(request: Request, workflow_id: str) -> Response:
    """Start a new workflow from this one's state at an event, with optional overrides."""
    identity, form = await _checked(request, operate=True)
    actions = console_of(request).actions
    new_id = _text(form, "new_workflow_id")
    constraints = _lines(form, "constraints")
    fields: dict[str, Any] = {
        "parent_workflow_id": workflow_id,
        "at_version": _number(form, "at_version") or 0,
        "constraints": constraints or None,
        "max_revisions": _number(form, "max_revisions"),
        "reason": _text(form, "reason"),
    }
    if new_id:
        fields["workflow_id"] = new_id
    holder: dict[str, str] = {}

    async def publish() -> str:
        message = ForkWorkflow(**{"workflow_id": f"wf-{uuid4().hex}", **fields})
        holder["id"] = message.workflow_id
        return await actions.fork(identity, message)

    response = await _attempt(request, publish, "")
    if isinstance(response, RedirectResponse):
        return RedirectResponse(_workflow_url(holder["id"], "forked"), status_code=303)
    return response
