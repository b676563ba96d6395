"""The console's composition: ``create_app`` wires the store, a signing-bus factory, the dead
letters and the sign-in configuration into a FastAPI app, with nothing built at import time.

Every request gets a session (a signed cookie holding the CSRF token, and the user once signed
in). Pages need a signed-in user, or open mode: no sign-in configured, which the CLI allows only
on loopback, where every visitor acts as the development ``operator``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader

from shared.console.access import (
    Access,
    ConsoleRole,
    Identity,
    Session,
    is_loopback,
    new_session,
    read_session,
    seal_session,
)
from shared.console.actions import Actions, BusFactory
from shared.console.deadletters import DeadLetterSource
from shared.eventstore import EventStore

__all__ = ["COOKIE", "Console", "Forbidden", "SignInRequired", "create_app"]

COOKIE = "agentlog_console"
_HERE = Path(__file__).parent
#: Paths a visitor reaches without signing in.
_PUBLIC = ("/signin", "/static/")


class SignInRequired(Exception):
    """The request needs a signed-in user."""


class Forbidden(Exception):
    """The signed-in user may not do this (or the form's CSRF token is wrong)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Console:
    """What the routes use: the app's dependencies, in one place."""

    store: EventStore
    actions: Actions
    dead_letters: DeadLetterSource
    access: Access
    templates: Jinja2Templates
    state_dir: Path | None
    poll_s: float
    live_lifetime_s: float

    def render(
        self, request: Request, name: str, context: dict[str, Any], status_code: int = 200
    ) -> HTMLResponse:
        """A page, with who is signed in and the CSRF token every form carries."""
        session: Session = request.state.session
        base = {
            "me": request.state.identity,
            "csrf": session.csrf,
            "open_mode": self.access.open,
            "path": request.url.path,
        }
        return self.templates.TemplateResponse(
            request, name, {**base, **context}, status_code=status_code
        )


def console_of(request: Request) -> Console:
    """The console the request belongs to."""
    console: Console = request.app.state.console
    return console


def identity_of(request: Request) -> Identity:
    """The signed-in identity; SignInRequired for a visitor."""
    identity: Identity | None = request.state.identity
    if identity is None:
        raise SignInRequired()
    return identity


def create_app(
    *,
    store: EventStore,
    bus_for: BusFactory,
    dead_letters: DeadLetterSource,
    access: Access,
    state_dir: Path | None = None,
    poll_s: float = 0.5,
    live_lifetime_s: float = 300.0,
) -> FastAPI:
    """The console app; it starts ``store`` when the server starts and stops it after.
    ``bus_for(principal)`` returns an unstarted bus signing as that principal (one per write)."""
    from shared.console import forms, live, pages

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with store:
            yield

    app = FastAPI(
        title="agentlog console",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    environment = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=True)
    app.state.console = Console(
        store=store,
        actions=Actions(store, bus_for),
        dead_letters=dead_letters,
        access=access,
        templates=Jinja2Templates(env=environment),
        state_dir=state_dir,
        poll_s=poll_s,
        live_lifetime_s=live_lifetime_s,
    )
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    app.include_router(pages.router)
    app.include_router(forms.router)
    app.include_router(live.router)
    app.middleware("http")(_sessions)
    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.add_exception_handler(Forbidden, _forbidden)
    return app


async def _sessions(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Attach the session and identity; refuse a foreign Host in open mode; set the cookie."""
    console = console_of(request)
    access = console.access
    if access.open and not is_loopback(request.url.hostname or ""):
        # Open mode trusts loopback only; a page on another site that resolves its own name to
        # 127.0.0.1 (DNS rebinding) arrives with its own Host and is turned away here.
        return Response("this console answers on loopback names only", status_code=403)
    session = read_session(access, request.cookies.get(COOKIE))
    minted = session is None
    if session is None:
        session = new_session(access)
    request.state.session = session
    request.state.identity = _identity(access, session, request)
    if request.state.identity is None and not request.url.path.startswith(_PUBLIC):
        if request.method != "GET" or request.url.path.startswith("/live/"):
            response: Response = Response("sign in first", status_code=401)
        else:
            response = RedirectResponse(f"/signin?next={request.url.path}", status_code=303)
    else:
        response = await call_next(request)
    if minted and COOKIE not in response.headers.get("set-cookie", ""):
        set_session_cookie(response, access, session)
    return response


def _identity(access: Access, session: Session, request: Request) -> Identity | None:
    if access.open:
        return Identity("operator", ConsoleRole.OPERATOR, "open")
    if access.trusted_header:
        by_proxy = access.from_header(request.headers.get(access.trusted_header))
        if by_proxy is not None:
            return by_proxy
    return session.identity()


def set_session_cookie(response: Response, access: Access, session: Session) -> None:
    """HttpOnly and SameSite=Strict: no script reads it, no other site's form sends it."""
    response.set_cookie(
        COOKIE,
        seal_session(access, session),
        max_age=int(access.session_s),
        httponly=True,
        samesite="strict",
        secure=access.secure_cookies,
        path="/",
    )


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    return Response("sign in first", status_code=401)


async def _forbidden(request: Request, exc: Exception) -> Response:
    reason = exc.reason if isinstance(exc, Forbidden) else "forbidden"
    return console_of(request).render(request, "error.html", {"message": reason}, 403)
