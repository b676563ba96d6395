"""Signing and verifying records: Ed25519 over the CloudEvent's identity and payload.

The signature covers, length-prefixed so no field can bleed into the next: a version tag, the
``ce_id``, ``ce_type``, ``ce_source``, ``ce_subject`` and ``ce_time`` headers, the record key
and the SHA-256 of the value. It travels in one header::

    agentlog-signature: v1;key=<principal>;sig=<base64url signature>

Replays: ``ce_time`` is signed, and the verifier refuses a signature whose time is further than
``max_skew_s`` from the record's own timestamp. A legitimate record that waited in Kafka keeps
both times close together; a captured record re-published later gets a new record timestamp
(with ``LogAppendTime`` on the topic, the broker sets it and no client can fake it). A replay
inside the window carries an id the supervisor has already applied, so it changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.auth.keys import Keyring, Principal

__all__ = [
    "SIGNATURE_HEADER",
    "AuthenticationError",
    "Signer",
    "Verifier",
    "signing_input",
]

SIGNATURE_HEADER = "agentlog-signature"
_VERSION = b"agentlog-signature-v1"
_SIGNED_HEADERS = ("ce_id", "ce_type", "ce_source", "ce_subject", "ce_time")


class AuthenticationError(ValueError):
    """A record whose signature is missing, unknown, wrong or stale (one line, for the DLQ)."""


def signing_input(headers: Mapping[str, bytes], key: bytes | None, value: bytes | None) -> bytes:
    """The exact bytes a signature covers."""
    fields = [_VERSION, *(headers.get(name, b"") for name in _SIGNED_HEADERS)]
    fields.append(key or b"")
    fields.append(hashlib.sha256(value or b"").digest())
    return b"".join(len(field).to_bytes(4, "big") + field for field in fields)


@dataclass(frozen=True)
class Signer:
    """Signs as one principal; the only holder of that principal's private key."""

    principal: str
    key: Ed25519PrivateKey

    def header(self, headers: Mapping[str, bytes], key: bytes | None, value: bytes | None) -> bytes:
        """The ``agentlog-signature`` header value for a record."""
        signature = self.key.sign(signing_input(headers, key, value))
        encoded = base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
        return f"v1;key={self.principal};sig={encoded}".encode()

    def __repr__(self) -> str:  # the key never appears in logs or tracebacks
        return f"Signer(principal={self.principal!r})"


class Verifier:
    """Checks a record's signature against the keyring; returns the verified principal."""

    def __init__(self, keyring: Keyring, *, max_skew_s: float = 300.0) -> None:
        self._keyring = keyring
        self._max_skew_s = max_skew_s

    def verify(
        self,
        headers: Mapping[str, bytes],
        key: bytes | None,
        value: bytes | None,
        *,
        record_time: datetime,
        signed_time: datetime | None,
    ) -> Principal:
        """The principal that signed this record, or ``AuthenticationError`` saying why not."""
        raw = headers.get(SIGNATURE_HEADER)
        if not raw:
            raise AuthenticationError("unsigned record")
        name, signature = _parse(raw)
        trusted = self._keyring.get(name)
        if trusted is None:
            raise AuthenticationError(f"signed by unknown key {name!r}")
        try:
            trusted.public_key.verify(signature, signing_input(headers, key, value))
        except InvalidSignature:
            raise AuthenticationError(f"signature of {name!r} does not match the record") from None
        if signed_time is None:
            raise AuthenticationError("signed record has no ce_time")
        skew = abs((record_time - signed_time).total_seconds())
        if skew > self._max_skew_s:
            raise AuthenticationError(
                f"signature of {name!r} made at {signed_time.isoformat()} is {skew:.0f} s from "
                f"the record's time (limit {self._max_skew_s:g} s): a replayed record"
            )
        return trusted.principal


def _parse(raw: bytes) -> tuple[str, bytes]:
    try:
        parts = dict(part.split("=", 1) for part in raw.decode("ascii").split(";")[1:])
        version = raw.split(b";", 1)[0]
        name, encoded = parts["key"], parts["sig"]
        signature = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (UnicodeDecodeError, ValueError, KeyError):
        raise AuthenticationError("unreadable agentlog-signature header") from None
    if version != b"v1":
        raise AuthenticationError(f"unknown signature version {version!r}")
    return name, signature
