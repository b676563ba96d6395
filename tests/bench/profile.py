"""`make profile`: where each agentlog process spends its CPU under load, sampled with py-spy.

The comparison's workload (``tests.bench.compare``: the same goal, the same five services) runs
at ``AGENTLOG_PROFILE_IN_FLIGHT`` workflows in flight (default 10) on a fresh embedded stack
with the broker ``AGENTLOG_PROFILE_BROKER`` names (``kafka`` by default, ``tansu``), while one
``py-spy record`` per service samples it for ``AGENTLOG_PROFILE_SECONDS`` (default 20). py-spy
samples only threads that are running, so a function's share of the samples is its share of
the process's CPU.

Prints each process's top functions by self time (the function's own code, not its callees)
and by inclusive time (agentlog's and libraries' functions, not the event loop's), and writes
them to ``bench-profile/profile.json`` next to py-spy's raw samples, one file per process, which
``py-spy``'s flame-graph tools read (``AGENTLOG_PROFILE_DIR`` moves the folder).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.settings import Settings
from shared.stack import EmbeddedStack
from shared.stack.state import BrokerKind
from tests.bench.peers.agentlog_flow import AgentlogReports
from tests.bench.peers.measure import run_batch
from tests.bench.workflows import GOAL

__all__ = ["StackProfile", "fold_samples", "main"]

_TOP = 12
#: Samples per second per process; 100 is py-spy's default and costs the sampled process nothing.
_RATE = 100
#: Files every sample of a process passes through: the process's start, not its work.
_ENTRY_FILES = ("runtime/lifecycle.py", "runtime/wiring.py", "runtime/worker_main.py")


@dataclass
class StackProfile:
    """One process's samples, folded by function: self (own code) and inclusive (with callees)."""

    samples: int = 0
    self_counts: Counter[str] = field(default_factory=Counter)
    inclusive_counts: Counter[str] = field(default_factory=Counter)

    def top(self, counts: Counter[str], n: int = _TOP) -> list[dict[str, Any]]:
        """The ``n`` largest entries as ``{"function", "percent"}`` of all samples."""
        total = self.samples or 1
        return [
            {"function": name, "percent": round(100 * count / total, 1)}
            for name, count in counts.most_common(n)
        ]


def fold_samples(raw: str) -> StackProfile:
    """Fold py-spy's ``--format raw`` output: ``frame;frame;... count`` per line, root first,
    each frame ``function (file:line)``."""
    profile = StackProfile()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";")]
        if not frames:
            continue
        profile.samples += count
        profile.self_counts[frames[-1]] += count
        for name in set(frames):  # a recursive function counts once per sample
            if _is_work(name):
                profile.inclusive_counts[name] += count
    return profile


def _short(frame: str) -> str:
    """``function (module/path.py:line)`` → ``function (module/path.py)``: py-spy already
    prints paths relative to ``sys.path``; the line would split one function into many."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({where})" if where else name


def _is_work(name: str) -> bool:
    """Whether an inclusive entry says something: agentlog's or a library's code below the
    process's entry points and the event loop (which every sample passes through)."""
    where = name.partition(" (")[2].rstrip(")")
    top = where.split("/", 1)[0].removesuffix(".py")
    if not where or where.startswith("<") or top in sys.stdlib_module_names:
        return False
    return not where.endswith(_ENTRY_FILES) and not name.startswith(("main ", "main.", "<module> "))


def _record(spy: str, pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` for ``seconds`` in the background (returns at once)."""
    options = ["--format", "raw", "--function", "--nonblocking", "--rate", str(_RATE)]
    target = ["--duration", str(int(seconds)), "--pid", str(pid), "--output", str(output)]
    return subprocess.Popen(
        [spy, "record", *options, *target],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _py_spy() -> str:
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("make profile needs py-spy: .venv/bin/pip install py-spy")
    return found


async def _profile(
    broker: BrokerKind, in_flight: int, seconds: float, tmp: Path, out: Path
) -> dict[str, Any]:
    docs = tmp / "docs"
    shutil.copytree(Path.cwd() / "docs", docs)
    stack = EmbeddedStack(tmp / ".agentlog", broker=broker)
    info = stack.up()
    try:
        env = {
            "AGENTLOG_DATABASE_URL": info.database_url,
            "AGENTLOG_KAFKA_BOOTSTRAP": info.kafka_bootstrap,
            "AGENTLOG_DOCS_DIR": str(docs),
            "AGENTLOG_AUTH_KEYS_DIR": str(stack.state_dir / "keys"),
        }
        settings = Settings(
            database_url=info.database_url,
            kafka_bootstrap=info.kafka_bootstrap,
            state_dir=stack.state_dir,
            docs_dir=docs,
        )
        async with AgentlogReports(settings, env, tmp / "logs") as fleet:
            await fleet.run("wf-profile-warmup", GOAL)
            spy = _py_spy()
            recorders = {
                name: _record(spy, pid, seconds, out / f"{name}.txt")
                for name, pid in fleet.pids.items()
            }
            # More workflows than the window can finish: the services stay busy throughout.
            stop = asyncio.Event()

            async def run_one(workflow_id: str) -> tuple[str, str | None]:
                if stop.is_set():
                    return "skipped", None
                completion = await fleet.run(workflow_id, GOAL)
                return completion.outcome, None

            load = asyncio.create_task(run_batch(run_one, "profile", 10_000, in_flight))
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: [r.wait() for r in recorders.values()]
            )
            stop.set()
            batch = await load
    finally:
        stack.down()
    processes: dict[str, Any] = {}
    for name in recorders:
        path = out / f"{name}.txt"
        profile = fold_samples(path.read_text() if path.exists() else "")
        processes[name] = {
            "samples": profile.samples,
            "cpu_percent": round(100 * profile.samples / (_RATE * seconds), 1),
            "top_self": profile.top(profile.self_counts),
            "top_inclusive": profile.top(profile.inclusive_counts),
        }
    return {
        "broker": broker.value,
        "in_flight": in_flight,
        "seconds": seconds,
        "completed": batch.outcomes.get("completed", 0),
        "processes": processes,
    }


def _print(result: dict[str, Any]) -> None:
    print(
        f"py-spy, {result['seconds']:.0f} s at {result['in_flight']} in flight on"
        f" {result['broker']}: {result['completed']} workflows completed"
    )
    for name, numbers in result["processes"].items():
        print(f"\n{name}: {numbers['cpu_percent']}% of a core ({numbers['samples']} samples)")
        print("  self:      " + "; ".join(_entry(e) for e in numbers["top_self"][:8]))
        print("  inclusive: " + "; ".join(_entry(e) for e in numbers["top_inclusive"][:8]))


def _entry(entry: dict[str, Any]) -> str:
    return f"{entry['percent']}% {entry['function']}"


def main() -> None:
    """Profile the fleet once and write the results."""
    env = os.environ
    broker = BrokerKind(env.get("AGENTLOG_PROFILE_BROKER", "kafka"))
    in_flight = int(env.get("AGENTLOG_PROFILE_IN_FLIGHT", "10"))
    seconds = float(env.get("AGENTLOG_PROFILE_SECONDS", "20"))
    out = Path(env.get("AGENTLOG_PROFILE_DIR", "bench-profile"))
    out.mkdir(parents=True, exist_ok=True)
    results = out / "profile.json"
    with tempfile.TemporaryDirectory(prefix="agentlog-profile-") as tmp:
        result = asyncio.run(_profile(broker, in_flight, seconds, Path(tmp), out))
    results.write_text(json.dumps(result, indent=2) + "\n")
    _print(result)
    print(f"\nwritten to {results}")


if __name__ == "__main__":
    main()
