"""Principals, their Ed25519 keys, and the keyring a verifier trusts.

Every process that publishes holds one private key (its principal's); a verifier holds only the
keyring of public keys, so a compromised supervisor cannot forge a worker's result or an
operator's cancel. ``agentlog stack up`` generates a development set with
``ensure_development_keys``; production keys come from files or the environment
(docs/security.md).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "DEVELOPMENT_PRINCIPALS",
    "KEYRING_FILE",
    "CredentialError",
    "Keyring",
    "Principal",
    "Role",
    "TrustedKey",
    "ensure_development_keys",
    "ensure_principal_key",
    "load_private_key",
    "private_key_from_text",
    "private_key_texts",
    "public_key_text",
]

KEYRING_FILE = "keyring.json"


class CredentialError(ValueError):
    """A key or keyring that cannot be read; the message is one line for the user."""


class Role(StrEnum):
    """What a principal may do (the authorisation table lives in ``shared.auth.policy``)."""

    SUPERVISOR = "supervisor"
    AGENT = "agent"
    OPERATOR = "operator"
    UPSTREAM = "upstream"
    #: May answer approval requests, nothing else.
    APPROVER = "approver"


@dataclass(frozen=True)
class Principal:
    """A verified identity: who signed a message, never what the message claims."""

    name: str
    role: Role
    #: For ``Role.AGENT``: the agent whose results it may send (``writer``, ``critic``…).
    agent: str | None = None

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class TrustedKey:
    """A principal and the public key its signatures verify with."""

    principal: Principal
    public_key: Ed25519PublicKey


#: The development principals ``agentlog stack up`` creates: one per service, one operator (the
#: CLI) and one upstream system (example producers and tests).
DEVELOPMENT_PRINCIPALS: tuple[Principal, ...] = (
    Principal("supervisor", Role.SUPERVISOR),
    Principal("search", Role.AGENT, "search"),
    Principal("writer", Role.AGENT, "writer"),
    Principal("critic", Role.AGENT, "critic"),
    Principal("summarizer", Role.AGENT, "summarizer"),
    Principal("operator", Role.OPERATOR),
    Principal("upstream", Role.UPSTREAM),
    Principal("approver", Role.APPROVER),
)


class Keyring:
    """The public keys a verifier trusts, by principal name."""

    def __init__(self, keys: Iterable[TrustedKey] = ()) -> None:
        self._keys = {key.principal.name: key for key in keys}

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, name: str) -> TrustedKey | None:
        """The trusted key of ``name``, or None for a stranger."""
        return self._keys.get(name)

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Read ``keyring.json``: ``{"principals": {name: {role, agent?, public_key}}}``."""
        try:
            document = json.loads(path.read_text())
            entries: Mapping[str, Mapping[str, str]] = document["principals"]
            return cls(_trusted(name, entry) for name, entry in entries.items())
        except FileNotFoundError:
            raise CredentialError(f"no keyring at {path}") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CredentialError(f"unreadable keyring {path}: {exc}") from None

    def dump(self, path: Path) -> None:
        """Write the keyring (public material only) atomically."""
        principals = {
            name: {
                "role": key.principal.role.value,
                **({"agent": key.principal.agent} if key.principal.agent else {}),
                "public_key": public_key_text(key.public_key),
            }
            for name, key in sorted(self._keys.items())
        }
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"version": 1, "principals": principals}, indent=2))
        temporary.replace(path)


def _trusted(name: str, entry: Mapping[str, str]) -> TrustedKey:
    role = Role(entry["role"])
    agent = entry.get("agent") or (name if role is Role.AGENT else None)
    raw = base64.b64decode(entry["public_key"], validate=True)
    return TrustedKey(Principal(name, role, agent), Ed25519PublicKey.from_public_bytes(raw))


def public_key_text(key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key, base64: what ``keyring.json`` stores."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def private_key_from_text(text: str) -> Ed25519PrivateKey:
    """A private key from PEM (PKCS#8) or a base64 raw 32-byte seed."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except ValueError:
        raise CredentialError("not an Ed25519 private key (PEM or base64 seed)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CredentialError("not an Ed25519 private key")
    return key


def private_key_texts(key: Ed25519PrivateKey) -> list[str]:
    """Every text form the key is written in (base64 seed, PEM body lines), for redaction."""
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return [base64.b64encode(raw).decode(), *body]


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read a principal's private key file."""
    try:
        return private_key_from_text(path.read_text())
    except FileNotFoundError:
        raise CredentialError(f"no signing key at {path}") from None
    except OSError as exc:
        raise CredentialError(f"cannot read signing key {path}: {exc.strerror}") from None
    except CredentialError as exc:
        raise CredentialError(f"{path}: {exc}") from None


def ensure_development_keys(
    keys_dir: Path, principals: Iterable[Principal] = DEVELOPMENT_PRINCIPALS
) -> list[str]:
    """Create any missing development key pair and the keyring; returns the names created.

    Existing keys are kept (a restarted stack must not invalidate running services' keys).
    """
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    created: list[str] = []
    trusted: list[TrustedKey] = []
    for principal in principals:
        key, new = _key_file(keys_dir / f"{principal.name}.key")
        if new:
            created.append(principal.name)
        trusted.append(TrustedKey(principal, key.public_key()))
    if created or not (keys_dir / KEYRING_FILE).exists():
        Keyring(trusted).dump(keys_dir / KEYRING_FILE)
    return created


def ensure_principal_key(keys_dir: Path, principal: Principal) -> bool:
    """Give one more principal (a console user, say) a key pair and trust it in the existing
    keyring, keeping every other entry; True when its key was created. Verifiers read the
    keyring when they start, so restart them to accept the new principal."""
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key, created = _key_file(keys_dir / f"{principal.name}.key")
    path = keys_dir / KEYRING_FILE
    keyring = Keyring.load(path) if path.exists() else Keyring()
    trusted = keyring.get(principal.name)
    if trusted is None or trusted.principal != principal or created:
        entries = [k for name, k in keyring._keys.items() if name != principal.name]
        Keyring([*entries, TrustedKey(principal, key.public_key())]).dump(path)
    return created


def _key_file(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The private key at ``path``, generated there first if missing (and whether it was)."""
    if path.exists():
        return load_private_key(path), False
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # O_EXCL + 0600: never readable by others, never overwriting a concurrent writer.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return key, True
