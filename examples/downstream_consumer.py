"""A downstream system reading agentlog's workflow outcomes, with nothing but aiokafka and json.

Like upstream_producer.py this imports no agentlog code: it relies only on the topic table and
``schemas/json/agentlog.workflow.completed.v2.json``. It reads ``agentlog.completions`` from
the beginning in its own consumer group (it never commits, so every run replays the topic) and
prints each completion event's JSON payload on one line of stdout.

    AGENTLOG_KAFKA_BOOTSTRAP=127.0.0.1:9092 python examples/downstream_consumer.py \\
        --workflow-id wf-0123 --count 1

Records of other types (by the ``ce_type`` header) and payloads that are not JSON objects are
reported on stderr and skipped: a consumer must survive whatever arrives on a topic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer

__all__ = ["build_parser", "consume", "main"]

COMPLETIONS_TOPIC = "agentlog.completions"
COMPLETION_TYPE = "agentlog.workflow.completed.v2"


def build_parser() -> argparse.ArgumentParser:
    """The command line: optional filter, stop condition and routing."""
    parser = argparse.ArgumentParser(description="Print agentlog workflow completions.")
    parser.add_argument("--workflow-id", default=None, help="print only this workflow's events")
    parser.add_argument(
        "--count", type=int, default=None, help="stop after printing N events (default: run on)"
    )
    parser.add_argument("--group", default="agentlog-example-downstream", help="consumer group")
    parser.add_argument("--topic", default=COMPLETIONS_TOPIC, help="topic to read")
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("AGENTLOG_KAFKA_BOOTSTRAP"),
        help="Kafka bootstrap servers (default: $AGENTLOG_KAFKA_BOOTSTRAP)",
    )
    return parser


def _timing(name: str, default: int) -> int:
    """A client timing from the same AGENTLOG_KAFKA_* variable agentlog's services read."""
    return int(os.environ.get(f"AGENTLOG_KAFKA_{name.upper()}", default))


def _consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    # The defaults suit the embedded broker: it answers a waiting fetch only when
    # fetch_max_wait_ms runs out, and groups settle in about session_timeout / 2. Apache Kafka
    # refuses sessions under 6 s by default: export AGENTLOG_KAFKA_SESSION_TIMEOUT_MS=10000.
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=_timing("session_timeout_ms", 2000),
        heartbeat_interval_ms=_timing("heartbeat_interval_ms", 200),
        rebalance_timeout_ms=_timing("rebalance_timeout_ms", 2000),
        fetch_max_wait_ms=_timing("fetch_max_wait_ms", 10),
    )


def _completion(record: Any, workflow_id: str | None) -> dict[str, Any] | None:
    """The record's completion event, or None when it is another type, malformed or filtered."""
    headers = {name: value for name, value in record.headers or ()}
    ce_type = headers.get("ce_type", b"").decode(errors="replace")
    if ce_type != COMPLETION_TYPE:
        print(f"skipping offset {record.offset}: ce_type {ce_type!r}", file=sys.stderr)
        return None
    try:
        event = json.loads(record.value)
    except (TypeError, ValueError) as error:
        print(f"skipping offset {record.offset}: not JSON ({error})", file=sys.stderr)
        return None
    if not isinstance(event, dict):
        print(f"skipping offset {record.offset}: not a JSON object", file=sys.stderr)
        return None
    if workflow_id is not None and event.get("workflow_id") != workflow_id:
        return None
    return event


async def consume(
    bootstrap: str, topic: str, group: str, workflow_id: str | None, count: int | None
) -> int:
    """Print completion events until ``count`` were printed (or forever); return how many."""
    consumer = _consumer(bootstrap, topic, group)
    await consumer.start()
    printed = 0
    try:
        while count is None or printed < count:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    event = _completion(record, workflow_id)
                    if event is None:
                        continue
                    print(json.dumps(event, sort_keys=True), flush=True)
                    printed += 1
                    if count is not None and printed >= count:
                        return printed
    finally:
        await consumer.stop()
    return printed


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and print completions; Ctrl-C stops cleanly."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.bootstrap:
        parser.error("set AGENTLOG_KAFKA_BOOTSTRAP or pass --bootstrap")
    if args.count is not None and args.count < 1:
        parser.error("--count must be at least 1")
    try:
        asyncio.run(consume(args.bootstrap, args.topic, args.group, args.workflow_id, args.count))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
