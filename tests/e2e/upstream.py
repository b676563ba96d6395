"""An upstream system in a few lines: plain aiokafka, CloudEvents headers, no agentlog imports.

It signs each goal as the ``upstream`` principal, from the wire format alone (docs/security.md):
Ed25519 over the length-prefixed ``ce_id``, ``ce_type``, ``ce_source``, ``ce_subject``,
``ce_time``, key and SHA-256 of the value, in an ``agentlog-signature`` header. The key file is
``$AGENTLOG_AUTH_KEYS_DIR/upstream.key`` (the test session exports the variable).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

__all__ = ["GOALS_TOPIC", "publish_goal", "sign_headers"]

GOALS_TOPIC = "agentlog.goals"
_SIGNED = ("ce_id", "ce_type", "ce_source", "ce_subject", "ce_time")


def sign_headers(
    headers: list[tuple[str, bytes]], key: bytes, value: bytes, principal: str = "upstream"
) -> list[tuple[str, bytes]]:
    """``headers`` plus the ``agentlog-signature`` header, signed with ``principal``'s key."""
    path = Path(os.environ["AGENTLOG_AUTH_KEYS_DIR"]) / f"{principal}.key"
    private = load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    named = dict(headers)
    fields = [b"agentlog-signature-v1", *(named.get(n, b"") for n in _SIGNED), key]
    fields.append(hashlib.sha256(value).digest())
    signed = b"".join(len(f).to_bytes(4, "big") + f for f in fields)
    signature = base64.urlsafe_b64encode(private.sign(signed)).rstrip(b"=").decode()
    return [*headers, ("agentlog-signature", f"v1;key={principal};sig={signature}".encode())]


async def publish_goal(
    producer: AIOKafkaProducer, goal: str, constraints: list[str] | None = None
) -> str:
    """Publish a signed goal the way any upstream system would; returns the new workflow id."""
    workflow_id = f"wf-test-{uuid.uuid4().hex[:10]}"
    payload = {"workflow_id": workflow_id, "goal": goal, "constraints": constraints or []}
    value = json.dumps(payload).encode()
    headers = [
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_type", b"agentlog.goal.submitted.v1"),
        ("ce_source", b"tests/upstream"),
        ("ce_specversion", b"1.0"),
        ("ce_time", datetime.now(UTC).isoformat().encode()),
        ("ce_subject", workflow_id.encode()),
        ("content-type", b"application/json"),
    ]
    key = workflow_id.encode()
    await producer.send_and_wait(
        GOALS_TOPIC, value, key=key, headers=sign_headers(headers, key, value)
    )
    return workflow_id
