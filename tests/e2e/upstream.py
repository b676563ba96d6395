"""An upstream system in a few lines: plain aiokafka, CloudEvents headers, no agentlog imports."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

__all__ = ["GOALS_TOPIC", "publish_goal"]

GOALS_TOPIC = "agentlog.goals"


async def publish_goal(
    producer: AIOKafkaProducer, goal: str, constraints: list[str] | None = None
) -> str:
    """Publish a goal the way any upstream system would; returns the new workflow id."""
    workflow_id = f"wf-test-{uuid.uuid4().hex[:10]}"
    payload = {"workflow_id": workflow_id, "goal": goal, "constraints": constraints or []}
    headers = [
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_type", b"agentlog.goal.submitted.v1"),
        ("ce_source", b"tests/upstream"),
        ("ce_specversion", b"1.0"),
        ("ce_time", datetime.now(UTC).isoformat().encode()),
        ("ce_subject", workflow_id.encode()),
        ("content-type", b"application/json"),
    ]
    await producer.send_and_wait(
        GOALS_TOPIC, json.dumps(payload).encode(), key=workflow_id.encode(), headers=headers
    )
    return workflow_id
