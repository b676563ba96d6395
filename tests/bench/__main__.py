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
from tests.bench.append_lock import bench_append_lock
from tests.bench.audit import bench_export_verify
from tests.bench.brokers import bench_brokers
from tests.bench.compare import run_comparison
from tests.bench.controls import bench_controls
from tests.bench.eventstore import bench_append
from tests.bench.signing import bench_signing
from tests.bench.timetravel import bench_rollback_latency, bench_state_at
from tests.bench.tracing import bench_tracing
from tests.bench.transport import bench_round_trip
from tests.bench.verify_references import bench_verify_references
from tests.bench.workflows import bench_workflows

BENCHES = [
    "eventstore",
    "audit",
    "timetravel",
    "transport",
    "signing",
    "controls",
    "workflows",
    "rollback",
    "tracing",
    "compare",
    "brokers",
]


def _emit(name: str, numbers: dict[str, float]) -> None:
    print(json.dumps({"bench": name, **{k: round(v, 3) for k, v in numbers.items()}}), flush=True)


def main() -> None:
    """Run the selected benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--only",
        choices=BENCHES,
        action="append",
    )
    parser.add_argument("--workflows", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--tracing-workflows", type=int, default=20)
    args = parser.parse_args()
    selected = set(args.only or BENCHES)
    with tempfile.TemporaryDirectory(prefix="agentlog-bench-") as tmp:
        stack = EmbeddedStack(Path(tmp) / ".agentlog")
        info = stack.up()
        try:
            if "eventstore" in selected:
                _emit("eventstore_append", asyncio.run(bench_append(info.database_url)))
                _emit("append_lock", asyncio.run(bench_append_lock(info.database_url)))
            if "audit" in selected:
                _emit("audit_export_verify", asyncio.run(bench_export_verify(info.database_url)))
                _emit("audit_verify_references", asyncio.run(bench_verify_references()))
            if "timetravel" in selected:
                _emit("state_at_event", asyncio.run(bench_state_at(info.database_url)))
            if "signing" in selected:
                _emit("message_signing", bench_signing())
            if "controls" in selected:
                _emit("agent_controls_per_step", bench_controls())
            if "transport" in selected:
                _emit("transport_round_trip", asyncio.run(bench_round_trip(info.kafka_bootstrap)))
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
            if "workflows" in selected:
                numbers = asyncio.run(
                    bench_workflows(
                        settings, env, Path(tmp) / "logs", args.workflows, args.concurrency
                    )
                )
                _emit("workflows_end_to_end", numbers)
            if "rollback" in selected:
                rollback = bench_rollback_latency(settings, env, Path(tmp) / "rollback-logs")
                _emit("rollback_latency", asyncio.run(rollback))
            if "tracing" in selected:
                tracing = bench_tracing(
                    settings, env, Path(tmp) / "tracing-logs", args.tracing_workflows
                )
                _emit("tracing_cost_per_workflow", asyncio.run(tracing))
        finally:
            stack.down()
    if "brokers" in selected:
        # Stacks of their own: Tansu, then Apache Kafka, with Kafka's figures over Tansu's.
        figures = bench_brokers()
        for broker, numbers in figures.items():
            _emit(f"broker_{broker}", numbers)
        if "kafka" in figures:
            _emit(
                "broker_kafka_over_tansu",
                {k: figures["kafka"][k] / v for k, v in figures["tansu"].items() if v},
            )
    if "compare" in selected:
        # Last, on a fresh Postgres of its own: agentlog next to LangGraph and DBOS, written to
        # bench-results.json (counts from AGENTLOG_BENCH_*; see docs/benchmarks.md).
        run_comparison()


if __name__ == "__main__":
    main()
