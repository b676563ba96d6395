"""`make bench`: every benchmark against a fresh embedded stack, each next to its raw baseline.

Prints JSON lines; numbers are from this run on this machine (re-run to compare).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from shared.settings import Settings
from shared.stack import EmbeddedStack
from tests.bench.audit import bench_export_verify
from tests.bench.eventstore import bench_append
from tests.bench.signing import bench_signing
from tests.bench.transport import bench_round_trip
from tests.bench.workflows import bench_workflows


def _emit(name: str, numbers: dict[str, float]) -> None:
    print(json.dumps({"bench": name, **{k: round(v, 3) for k, v in numbers.items()}}), flush=True)


def main() -> None:
    """Run the selected benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--only",
        choices=["eventstore", "audit", "transport", "signing", "workflows"],
        action="append",
    )
    parser.add_argument("--workflows", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    selected = set(args.only or ["eventstore", "audit", "transport", "signing", "workflows"])
    with tempfile.TemporaryDirectory(prefix="agentlog-bench-") as tmp:
        stack = EmbeddedStack(Path(tmp) / ".agentlog")
        info = stack.up()
        try:
            if "eventstore" in selected:
                _emit("eventstore_append", asyncio.run(bench_append(info.database_url)))
            if "audit" in selected:
                _emit("audit_export_verify", asyncio.run(bench_export_verify(info.database_url)))
            if "signing" in selected:
                _emit("message_signing", bench_signing())
            if "transport" in selected:
                _emit("transport_round_trip", asyncio.run(bench_round_trip(info.kafka_bootstrap)))
            if "workflows" in selected:
                env = {
                    "AGENTLOG_DATABASE_URL": info.database_url,
                    "AGENTLOG_KAFKA_BOOTSTRAP": info.kafka_bootstrap,
                    "AGENTLOG_DOCS_DIR": str(Path.cwd() / "docs"),
                    "AGENTLOG_AUTH_KEYS_DIR": str(stack.state_dir / "keys"),
                }
                settings = Settings(
                    database_url=info.database_url,
                    kafka_bootstrap=info.kafka_bootstrap,
                    state_dir=stack.state_dir,
                )
                numbers = asyncio.run(
                    bench_workflows(
                        settings, env, Path(tmp) / "logs", args.workflows, args.concurrency
                    )
                )
                _emit("workflows_end_to_end", numbers)
        finally:
            stack.down()


if __name__ == "__main__":
    main()
