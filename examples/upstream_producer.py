"""An upstream system starting an agentlog workflow, with nothing but aiokafka and json.

This script deliberately imports no agentlog code: the contract between agentlog and the
systems around it is the topic table and the JSON Schemas in ``schemas/json/``. It publishes
one ``agentlog.goal.submitted.v1`` message to ``agentlog.goals`` as a CloudEvent in Kafka
binary mode (attributes in ``ce_*`` headers, the JSON payload as the record value), keyed by
the workflow id so every message about one workflow stays in one partition, in order.

    AGENTLOG_KAFKA_BOOTSTRAP=127.0.0.1:9092 python examples/upstream_producer.py \\
        "Compare event sourcing with CRUD" --constraint "min sources: 2"

It signs the goal as agentlog requires by default (docs/security.md): Ed25519 over the
length-prefixed ``ce_id``, ``ce_type``, ``ce_source``, ``ce_subject``, ``ce_time``, record key
and SHA-256 of the value, carried in an ``agentlog-signature`` header. The key is a PEM file:
``--key-file``, else ``$AGENTLOG_UPSTREAM_KEY_FILE``, else ``upstream.key`` in
``$AGENTLOG_AUTH_KEYS_DIR`` or ``.agentlog/keys/`` (what ``agentlog stack up`` generates).
``--principal`` names the key in agentlog's keyring (default ``upstream``).

It prints one JSON line: the workflow id and where the record landed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

__all__ = ["build_goal", "build_headers", "build_parser", "main", "publish_goal", "signature"]

GOALS_TOPIC = "agentlog.goals"
GOAL_TYPE = "agentlog.goal.submitted.v1"
_SIGNED_HEADERS = ("ce_id", "ce_type", "ce_source", "ce_subject", "ce_time")


def build_parser() -> argparse.ArgumentParser:
    """The command line: the goal text plus optional constraints and routing."""
    parser = argparse.ArgumentParser(description="Submit a goal to agentlog over Kafka.")
    parser.add_argument("goal", help="what the agents should research and write (3-4000 chars)")
    parser.add_argument(
        "--constraint",
        action="append",
        default=[],
        dest="constraints",
        help="a constraint on the report (repeatable, at most 20, 500 chars each)",
    )
    parser.add_argument(
        "--workflow-id", default=None, help="choose the workflow id (default: wf-<uuid>)"
    )
    parser.add_argument("--requested-by", default=None, help="who asked (free text)")
    parser.add_argument(
        "--max-revisions", type=int, default=None, help="override the revision budget (0-10)"
    )
    parser.add_argument("--source", default="/examples/upstream-producer", help="ce_source")
    parser.add_argument("--key-file", default=None, help="PEM Ed25519 key to sign with")
    parser.add_argument("--principal", default="upstream", help="the key's name in the keyring")
    parser.add_argument("--topic", default=GOALS_TOPIC, help="topic to publish to")
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("AGENTLOG_KAFKA_BOOTSTRAP"),
        help="Kafka bootstrap servers (default: $AGENTLOG_KAFKA_BOOTSTRAP)",
    )
    return parser


def build_goal(args: argparse.Namespace) -> dict[str, Any]:
    """The payload, shaped by schemas/json/agentlog.goal.submitted.v1.json."""
    goal: dict[str, Any] = {
        "workflow_id": args.workflow_id or f"wf-{uuid.uuid4().hex}",
        "goal": args.goal,
        "constraints": list(args.constraints),
        "submitted_at": datetime.now(UTC).isoformat(),
    }
    # Optional fields are left out rather than sent as null; the schema defaults them.
    if args.requested_by is not None:
        goal["requested_by"] = args.requested_by
    if args.max_revisions is not None:
        goal["max_revisions"] = args.max_revisions
    return goal


def build_headers(workflow_id: str, source: str) -> list[tuple[str, bytes]]:
    """CloudEvents 1.0 binary-mode attributes as Kafka headers."""
    attributes = {
        "ce_id": str(uuid.uuid4()),
        "ce_type": GOAL_TYPE,
        "ce_source": source,
        "ce_specversion": "1.0",
        "ce_time": datetime.now(UTC).isoformat(),
        "ce_subject": workflow_id,
        "content-type": "application/json",
    }
    return [(name, value.encode()) for name, value in attributes.items()]


def _key_file(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get("AGENTLOG_UPSTREAM_KEY_FILE"):
        return Path(os.environ["AGENTLOG_UPSTREAM_KEY_FILE"])
    keys = os.environ.get("AGENTLOG_AUTH_KEYS_DIR") or ".agentlog/keys"
    return Path(keys) / "upstream.key"


def signature(
    private_key: Ed25519PrivateKey,
    principal: str,
    headers: list[tuple[str, bytes]],
    key: bytes,
    value: bytes,
) -> tuple[str, bytes]:
    """The ``agentlog-signature`` header for a record."""
    named = dict(headers)
    fields = [b"agentlog-signature-v1"]
    fields += [
        named.get(n, b"") for n in ("ce_id", "ce_type", "ce_source", "ce_subject", "ce_time")
    ]
    fields += [key, hashlib.sha256(value).digest()]
    signed = b"".join(len(field).to_bytes(4, "big") + field for field in fields)
    encoded = base64.urlsafe_b64encode(private_key.sign(signed)).rstrip(b"=").decode()
    return "agentlog-signature", f"v1;key={principal};sig={encoded}".encode()


def load_key(path: Path) -> Ed25519PrivateKey:
    """The signing key, or a one-line error naming the file."""
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: cannot read signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SystemExit(f"error: {path} is not an Ed25519 private key")
    return key


async def publish_goal(
    bootstrap: str,
    topic: str,
    goal: dict[str, Any],
    source: str,
    signing: tuple[Ed25519PrivateKey, str] | None = None,
) -> dict[str, Any]:
    """Publish one goal and wait for the broker's acknowledgement; say where it landed."""
    # acks=all without idempotence: the embedded broker cannot initialise idempotent
    # producers, and agentlog dedupes redeliveries by ce_id/workflow id anyway.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        headers = build_headers(goal["workflow_id"], source)
        value, key = json.dumps(goal).encode(), goal["workflow_id"].encode()
        if signing is not None:
            headers.append(signature(signing[0], signing[1], headers, key, value))
        metadata = await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()
    return {
        "workflow_id": goal["workflow_id"],
        "ce_id": dict(headers)["ce_id"].decode(),
        "topic": metadata.topic,
        "partition": metadata.partition,
        "offset": metadata.offset,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, publish the goal, print where it went."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.bootstrap:
        parser.error("set AGENTLOG_KAFKA_BOOTSTRAP or pass --bootstrap")
    signing = (load_key(_key_file(args.key_file)), args.principal)
    receipt = asyncio.run(
        publish_goal(args.bootstrap, args.topic, build_goal(args), args.source, signing)
    )
    print(json.dumps(receipt), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
