"""Who may use the console, and how a request proves it: password hashes, signed session
cookies, CSRF tokens, roles, and the rule about which addresses the console may listen on.

Pure apart from the clock and ``os.urandom``: the routes call these, the tests call them too.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "Access",
    "ConsoleRole",
    "Identity",
    "Session",
    "User",
    "bind_problem",
    "hash_password",
    "is_loopback",
    "new_session",
    "read_session",
    "seal_session",
    "verify_password",
]

# scrypt at N=2**14, r=8: ~16 MiB and tens of milliseconds per guess, as OWASP suggests.
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32
_SCHEME = "scrypt"
# Room above the 16 MiB these parameters need (OpenSSL's own default limit is 32 MiB).
_MAXMEM = 64 * 1024 * 1024


class ConsoleRole(StrEnum):
    """What a console user may do."""

    #: Reads every page; changes nothing.
    VIEWER = "viewer"
    #: Also approves and denies (signs as a keyring ``approver``).
    APPROVER = "approver"
    #: Also submits goals, cancels, rolls back and forks (signs as a keyring ``operator``).
    OPERATOR = "operator"

    @property
    def may_decide(self) -> bool:
        """Approve or deny what a workflow waits for."""
        return self is not ConsoleRole.VIEWER

    @property
    def may_operate(self) -> bool:
        """Submit, cancel, roll back, fork."""
        return self is ConsoleRole.OPERATOR


@dataclass(frozen=True)
class User:
    """A configured console user: a role, and (for password sign-in) a scrypt hash."""

    name: str
    role: ConsoleRole
    password_hash: str | None = None


@dataclass(frozen=True)
class Identity:
    """Who a request comes from, and the keyring principal their changes are signed as."""

    name: str
    role: ConsoleRole
    #: ``password``, ``header`` (a trusted reverse proxy) or ``open`` (loopback, no sign-in).
    via: str

    @property
    def principal(self) -> str:
        """The signing key's name: each user signs with their own key."""
        return self.name


@dataclass(frozen=True)
class Access:
    """The sign-in configuration: users, an optional trusted proxy header, the session key."""

    users: Mapping[str, User]
    secret: bytes
    trusted_header: str | None = None
    session_s: float = 12 * 3600
    secure_cookies: bool = False

    @property
    def open(self) -> bool:
        """No sign-in configured: loopback only, everyone acts as the development operator."""
        return not self.users and not self.trusted_header

    def from_header(self, value: str | None) -> Identity | None:
        """The identity a trusted proxy names; listed users keep their role, others view."""
        if not self.trusted_header or not value or not value.strip():
            return None
        name = value.strip()
        user = self.users.get(name)
        return Identity(name, user.role if user else ConsoleRole.VIEWER, "header")

    def sign_in(self, name: str, password: str) -> Identity | None:
        """The identity for a correct name and password; None otherwise (same work either way,
        so timing does not tell whether the name exists)."""
        user = self.users.get(name)
        stored = user.password_hash if user is not None else None
        good = verify_password(password, stored or _dummy_hash())
        if user is None or stored is None or not good:
            return None
        return Identity(user.name, user.role, "password")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64): what ``AGENTLOG_CONSOLE_USERS`` stores."""
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN, maxmem=_MAXMEM
    )
    return "$".join([_SCHEME, str(_N), str(_R), str(_P), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a ``hash_password`` result (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != _SCHEME:
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=_MAXMEM,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@functools.cache
def _dummy_hash() -> str:
    """Checked against for an unknown name, so it costs what a known one does."""
    return hash_password("not a password", salt=b"agentlog-console")


# --- sessions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """What the session cookie holds: the signed-in user (if any) and the CSRF token."""

    user: str | None
    role: ConsoleRole | None
    csrf: str
    expires: float
    via: str = "password"

    def identity(self) -> Identity | None:
        """The signed-in identity, or None for a visitor who has not signed in."""
        if self.user is None or self.role is None:
            return None
        return Identity(self.user, self.role, self.via)


def new_session(access: Access, identity: Identity | None = None) -> Session:
    """A fresh session (a new CSRF token: signing in never keeps a visitor's token)."""
    return Session(
        user=identity.name if identity else None,
        role=identity.role if identity else None,
        csrf=_b64(os.urandom(18)),
        expires=time.time() + access.session_s,
        via=identity.via if identity else "password",
    )


def seal_session(access: Access, session: Session) -> str:
    """The cookie value: the session as JSON, and an HMAC-SHA256 over it."""
    payload = json.dumps(
        {
            "u": session.user,
            "r": session.role.value if session.role else None,
            "c": session.csrf,
            "e": session.expires,
            "v": session.via,
        },
        separators=(",", ":"),
    ).encode()
    body = _b64(payload)
    return f"{body}.{_b64(_mac(access, body))}"


def read_session(access: Access, cookie: str | None) -> Session | None:
    """The session a cookie holds; None when absent, altered, expired or signed by another
    process's secret."""
    if not cookie or "." not in cookie:
        return None
    body, _, mac = cookie.partition(".")
    try:
        if not hmac.compare_digest(_unb64(mac), _mac(access, body)):
            return None
        data = json.loads(_unb64(body))
        session = Session(
            user=data["u"],
            role=ConsoleRole(data["r"]) if data["r"] else None,
            csrf=str(data["c"]),
            expires=float(data["e"]),
            via=str(data.get("v", "password")),
        )
    except (ValueError, KeyError, TypeError):
        return None
    if session.expires < time.time():
        return None
    if session.user is not None and session.user not in access.users:
        return None  # a user removed from the configuration is signed out at once
    return session


def _mac(access: Access, body: str) -> bytes:
    return hmac.new(access.secret, b"agentlog-console-session:" + body.encode(), "sha256").digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- where it may listen -------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_problem(host: str, host_configured: bool, access: Access) -> str | None:
    """Why the console must not listen on ``host``; None when it may.

    Beyond loopback it needs both an explicit ``AGENTLOG_CONSOLE_HOST`` and sign-in, so a
    console without passwords is never reachable from another machine by accident.
    """
    if is_loopback(host):
        return None
    if not host_configured:
        return f"{host} is not a loopback address: set AGENTLOG_CONSOLE_HOST to listen on it"
    if access.open:
        return (
            f"refusing to listen on {host} without sign-in: set AGENTLOG_CONSOLE_USERS "
            "or AGENTLOG_CONSOLE_TRUSTED_HEADER (docs/console.md)"
        )
    return None
