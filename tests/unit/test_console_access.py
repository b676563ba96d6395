"""The console's access rules over the in-memory store and bus: sign-in, roles, CSRF, where it
may listen, the trusted header, and that a change is signed (and recorded) as its user."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from schemas.events import WorkflowPolicy
from schemas.topics import APPROVALS, CONTROL, GOALS
from services.supervisor.handler import Supervisor
from shared.auth import Principal, Role, ensure_development_keys
from shared.auth.keys import ensure_principal_key, load_private_key
from shared.auth.settings import AuthSettings, build_authenticator
from shared.auth.signing import Signer
from shared.console import Access, ConsoleRole, MemoryDeadLetters, User, create_app
from shared.console.access import bind_problem, hash_password, verify_password
from shared.eventstore import InMemoryEventStore
from shared.runtime.clock import SystemClock
from shared.transport import InMemoryBroker, InMemoryBus, Subscription

PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22", "vera": "vera-secret-333"}
ROLES = {"alice": ConsoleRole.OPERATOR, "bob": ConsoleRole.APPROVER, "vera": ConsoleRole.VIEWER}
WRITES = ["/workflows", "/workflows/wf-x/approve", "/workflows/wf-x/deny"]
WRITES += ["/workflows/wf-x/cancel", "/workflows/wf-x/rollback", "/workflows/wf-x/fork"]


@dataclass
class Harness:
    """A console app over an in-memory store and broker, signing with per-user keys."""

    store: InMemoryEventStore
    broker: InMemoryBroker
    keys: Path

    def app(self, access: Access) -> FastAPI:
        def bus_for(principal: str) -> InMemoryBus:
            signer = Signer(principal, load_private_key(self.keys / f"{principal}.key"))
            return InMemoryBus(service="console", broker=self.broker, signer=signer)

        return create_app(
            store=self.store,
            bus_for=bus_for,
            dead_letters=MemoryDeadLetters(self.broker),
            access=access,
        )

    def published(self) -> int:
        return sum(len(self.broker.records(t)) for t in (GOALS, CONTROL, APPROVALS))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Development keys plus alice (operator) and bob (approver) in the keyring."""
    folder = tmp_path_factory.mktemp("console-keys")
    ensure_development_keys(folder)
    ensure_principal_key(folder, Principal("alice", Role.OPERATOR))
    ensure_principal_key(folder, Principal("bob", Role.APPROVER))
    return folder


@pytest.fixture(scope="module")
def users() -> dict[str, User]:
    """Three users, one per role (hashed once: scrypt is slow on purpose)."""
    return {n: User(n, ROLES[n], hash_password(p)) for n, p in PASSWORDS.items()}


@pytest.fixture
def harness(keys: Path) -> Harness:
    """A fresh store and broker."""
    return Harness(InMemoryEventStore(), InMemoryBroker(), keys)


def access_for(users: dict[str, User], trusted_header: str | None = None) -> Access:
    """Password sign-in for ``users`` (and a trusted proxy header, if named)."""
    return Access(users=users, secret=b"k" * 32, trusted_header=trusted_header)


def client(app: FastAPI, host: str = "127.0.0.1") -> httpx.AsyncClient:
    """A client talking to the app in this event loop (no redirects followed)."""
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url=f"http://{host}:8780")


async def csrf_of(c: httpx.AsyncClient, path: str = "/signin") -> str:
    """The CSRF token a page's forms carry."""
    page = await c.get(path)
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, page.text[:300]
    return found.group(1)


async def signed_in(app: FastAPI, name: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in as ``name``."""
    async with client(app) as c:
        token = await csrf_of(c)
        form = {"username": name, "password": PASSWORDS[name], "csrf": token}
        response = await c.post("/signin", data=form)
        assert response.status_code == 303, response.text[:300]
        yield c


async def test_wrong_password_and_unknown_user_are_refused(
    harness: Harness, users: dict[str, User]
) -> None:
    """A wrong password or an unknown name gets 401 and the same words; pages stay closed."""
    async with client(harness.app(access_for(users))) as c:
        assert (await c.get("/workflows")).headers["location"] == "/signin?next=/workflows"
        for name, password in (("alice", "wrong-password"), ("mallory", PASSWORDS["alice"])):
            form = {"username": name, "password": password, "csrf": await csrf_of(c)}
            refused = await c.post("/signin", data=form)
            assert refused.status_code == 401
            assert "wrong user name or password" in refused.text
        assert (await c.get("/workflows")).status_code == 303
        assert (await c.get("/live/workflows")).status_code == 401
        assert (await c.post("/workflows", data={"goal": "x"})).status_code == 401
    assert harness.published() == 0


async def test_sign_in_opens_the_pages_and_sign_out_closes_them(
    harness: Harness, users: dict[str, User]
) -> None:
    """The right password signs in (a fresh CSRF token); signing out closes the pages again."""
    async with client(harness.app(access_for(users))) as c:
        visitor_token = await csrf_of(c)
        form = {"username": "vera", "password": PASSWORDS["vera"], "csrf": visitor_token}
        assert (await c.post("/signin", data=form)).headers["location"] == "/workflows"
        page = await c.get("/workflows")
        assert page.status_code == 200
        assert 'id="me">vera<' in page.text
        token = await csrf_of(c, "/workflows")
        assert token != visitor_token
        assert (await c.post("/signout", data={"csrf": token})).status_code == 303
        assert (await c.get("/workflows")).status_code == 303


async def test_a_viewer_cannot_change_anything(harness: Harness, users: dict[str, User]) -> None:
    """Every write answers a viewer 403 and publishes nothing; an approver cannot operate."""
    app = harness.app(access_for(users))
    async for c in signed_in(app, "vera"):
        token = await csrf_of(c, "/workflows")
        page = await c.get("/workflows")
        assert "Submit a goal" not in page.text
        for path in WRITES:
            response = await c.post(path, data={"csrf": token, "goal": "g", "to_version": "1"})
            assert response.status_code == 403, path
            assert "may not change anything" in response.text
    async for c in signed_in(app, "bob"):
        token = await csrf_of(c, "/workflows")
        for path in ["/workflows", "/workflows/wf-x/rollback", "/workflows/wf-x/fork"]:
            assert (await c.post(path, data={"csrf": token, "goal": "g"})).status_code == 403
    assert harness.published() == 0


async def test_a_post_without_the_sessions_csrf_token_is_refused(
    harness: Harness, users: dict[str, User]
) -> None:
    """An operator's form without the token (or with another session's) is 403."""
    app = harness.app(access_for(users))
    async with client(app) as other:
        foreign = await csrf_of(other)
    async for c in signed_in(app, "alice"):
        for data in ({"goal": "explain replay"}, {"goal": "explain replay", "csrf": foreign}):
            refused = await c.post("/workflows", data=data)
            assert refused.status_code == 403
            assert "security token" in refused.text
        signin = await c.post("/signin", data={"username": "alice", "password": "x"})
        assert signin.status_code == 403
    assert harness.published() == 0


def test_it_listens_beyond_loopback_only_when_told_and_with_sign_in(users: dict[str, User]) -> None:
    """Loopback always; another address needs AGENTLOG_CONSOLE_HOST and configured sign-in."""
    open_access = Access(users={}, secret=b"k" * 32)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert bind_problem(host, False, open_access) is None
    assert "AGENTLOG_CONSOLE_HOST" in (bind_problem("0.0.0.0", False, access_for(users)) or "")
    assert "without sign-in" in (bind_problem("0.0.0.0", True, open_access) or "")
    header = Access(users={}, secret=b"k" * 32, trusted_header="X-Forwarded-User")
    assert bind_problem("10.0.0.5", True, header) is None
    assert bind_problem("0.0.0.0", True, access_for(users)) is None


async def test_open_mode_answers_loopback_names_only(harness: Harness) -> None:
    """Without sign-in every loopback visitor is the dev operator; another Host is refused."""
    app = harness.app(Access(users={}, secret=b"k" * 32))
    async with client(app) as c:
        page = await c.get("/workflows")
        assert page.status_code == 200
        assert 'id="me">operator<' in page.text
    async with client(app, host="attacker.example") as c:
        assert (await c.get("/workflows")).status_code == 403


async def test_the_proxy_header_counts_only_when_configured(
    harness: Harness, users: dict[str, User]
) -> None:
    """X-Forwarded-User signs in only with AGENTLOG_CONSOLE_TRUSTED_HEADER; unknown names view."""
    headers = {"X-Forwarded-User": "alice"}
    async with client(harness.app(access_for(users))) as c:
        assert (await c.get("/workflows", headers=headers)).status_code == 303
    trusting = access_for(users, trusted_header="X-Forwarded-User")
    async with client(harness.app(trusting)) as c:
        page = await c.get("/workflows", headers=headers)
        assert 'id="me">alice<' in page.text
        assert "Submit a goal" in page.text
        stranger = await c.get("/workflows", headers={"X-Forwarded-User": "zed"})
        assert "Submit a goal" not in stranger.text
        assert ">viewer<" in stranger.text


def test_password_hashes_are_salted_scrypt() -> None:
    """The same password hashes differently each time and verifies; a wrong one does not."""
    first, second = hash_password("pa55word!"), hash_password("pa55word!")
    assert first.startswith("scrypt$")
    assert first != second
    assert verify_password("pa55word!", first)
    assert verify_password("pa55word!", second)
    assert not verify_password("pa55word?", first)
    assert not verify_password("pa55word!", "sha256$whatever")


async def _events(
    store: InMemoryEventStore, workflow_id: str, wanted: str
) -> list[dict[str, object]]:
    """The workflow's event data once an event of type ``wanted`` is recorded."""
    async with asyncio.timeout(10):
        while True:
            records = await store.read(workflow_id)
            if any(r.type == wanted for r in records):
                return [
                    {"type": r.type, **r.data, "_principal": r.metadata.get("principal")}
                    for r in records
                ]
            await asyncio.sleep(0.02)


async def test_changes_are_signed_and_recorded_as_the_user(
    harness: Harness, users: dict[str, User]
) -> None:
    """alice's goal and bob's approval reach a verifying supervisor as alice and bob."""
    auth = AuthSettings(keys_dir=harness.keys)
    authenticator = build_authenticator(auth, harness.keys)
    supervisor = Supervisor(harness.store, SystemClock(), WorkflowPolicy())
    bus = InMemoryBus(service="supervisor", broker=harness.broker, topics=[GOALS, APPROVALS])
    app = harness.app(access_for(users))
    async with bus:
        subscription = Subscription(
            [GOALS, APPROVALS],
            "agentlog.supervisor",
            supervisor.handle,
            "supervisor",
            authenticator=authenticator,
        )
        await bus.subscribe(subscription)
        async for c in signed_in(app, "alice"):
            form = {
                "goal": "Explain replay",
                "approve": "search",
                "workflow_id": "wf-who",
                "csrf": await csrf_of(c, "/workflows"),
            }
            submitted = await c.post("/workflows", data=form)
            assert submitted.headers["location"] == "/workflows/wf-who?notice=submitted"
        await _events(harness.store, "wf-who", "ApprovalRequested")
        async for c in signed_in(app, "bob"):
            page = await c.get("/workflows/wf-who")
            assert "Waits for a human" in page.text
            token = await csrf_of(c, "/workflows/wf-who")
            approved = await c.post("/workflows/wf-who/approve", data={"csrf": token})
            assert approved.status_code == 303
        events = await _events(harness.store, "wf-who", "ApprovalGranted")
    started = next(e for e in events if e["type"] == "WorkflowStarted")
    granted = next(e for e in events if e["type"] == "ApprovalGranted")
    assert (started["submitted_by"], granted["approver"]) == ("alice", "bob")
    assert granted["_principal"] == "bob"


async def test_sign_in_never_redirects_to_another_site(
    harness: Harness, users: dict[str, User]
) -> None:
    """A ``next`` naming another host lands on the workflows page instead."""
    async with client(harness.app(access_for(users))) as c:
        for target in ("//evil.example/x", "/\\evil.example", "https://evil.example"):
            form = {"username": "vera", "password": PASSWORDS["vera"], "next": target}
            response = await c.post("/signin", data={**form, "csrf": await csrf_of(c)})
            assert response.headers["location"] == "/workflows", target
        form = {"username": "vera", "password": PASSWORDS["vera"], "next": "/approvals"}
        response = await c.post("/signin", data={**form, "csrf": await csrf_of(c)})
        assert response.headers["location"] == "/approvals"
