"""What verify's references check costs on real workflow events (docs/audit.md, "Cost").

The audit bench's synthetic events hold no long values, so it cannot show this. Here 200 copies
of each golden history (tests/golden: real commands by reference, passages, drafts, forks and
rollbacks) go into an in-memory store, and ``verify_store`` runs with the check and, as the
baseline in the same run, with the check switched off.
Run: ``python -m tests.bench.verify_references``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from pathlib import Path
from typing import Any
from unittest import mock

from shared.eventstore import InMemoryEventStore, NewEvent, RecordedEvent
from shared.readside._check import StreamCheck
from shared.readside.audit import verify_store

__all__ = ["bench_verify_references"]

_GOLDEN = Path(__file__).resolve().parents[1] / "golden"


async def _store(copies: int) -> InMemoryEventStore:
    store = InMemoryEventStore()
    for path in sorted(_GOLDEN.glob("*.jsonl")):
        streams: dict[str, list[dict[str, Any]]] = {}
        for raw in path.read_text().splitlines():
            line = json.loads(raw)
            streams.setdefault(line["stream_id"], []).append(line)
        for copy in range(copies):
            for stream_id, lines in streams.items():
                events = [
                    NewEvent(x["type"], x["data"], x["schema_version"], metadata=x["metadata"])
                    for x in lines
                ]
                await store.append(f"{stream_id}-{copy}", events, 0)
    return store


def _unchecked(self: StreamCheck, event: RecordedEvent) -> str | None:
    """The check switched off (a plain function: a mock's call would cost more than the check)."""
    return None


async def bench_verify_references(copies: int = 200, rounds: int = 3) -> dict[str, float]:
    """Events/s of verify_store with and without the references check; their ratio."""
    store = await _store(copies)
    rates: dict[str, list[float]] = {"with_references_eps": [], "without_eps": []}
    for _ in range(rounds):
        for name in rates:
            off = mock.patch.object(StreamCheck, "_references", _unchecked)
            with off if name == "without_eps" else contextlib.nullcontext():
                start = time.perf_counter()
                result = await verify_store(store)
                rates[name].append(result.events_checked / (time.perf_counter() - start))
            assert result.ok, result
    out = {name: statistics.median(values) for name, values in rates.items()}
    out["with_over_without"] = out["with_references_eps"] / out["without_eps"]
    out["events"] = float(result.events_checked)
    return out


if __name__ == "__main__":
    for key, value in asyncio.run(bench_verify_references()).items():
        print(f"{key:>22}  {value:>10.2f}")
