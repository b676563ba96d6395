"""The comparison's results: agentlog ÷ each peer, what makes a run invalid, the printed table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["problems", "ratios", "table"]


def ratios(systems: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """agentlog ÷ each peer, per number (above 1: agentlog has more of it)."""
    found: dict[str, dict[str, float]] = {}
    for ours in ("agentlog-tansu", "agentlog-kafka"):
        for peer in ("langgraph", "dbos"):
            a, b = systems.get(ours, {}), systems.get(peer, {})
            if "runs" not in a or "runs" not in b:
                continue
            row: dict[str, float] = {}
            if a.get("single_workflow") and b.get("single_workflow"):
                for q in ("p50", "p95"):
                    mine = a["single_workflow"]["latency_ms"][q]
                    row[f"latency_{q}_ms@1"] = mine / b["single_workflow"]["latency_ms"][q]
            for level, rate in a["workflows_per_s"].items():
                if level in b["workflows_per_s"]:
                    row[f"workflows_per_s@{level}"] = rate / b["workflows_per_s"][level]
                    for q in ("p50", "p95"):
                        mine, theirs = a["latency_ms"][level][q], b["latency_ms"][level][q]
                        row[f"latency_{q}_ms@{level}"] = mine / theirs
            row["cpu_ms_per_workflow"] = (
                a["cpu_ms_per_workflow"]["total"] / b["cpu_ms_per_workflow"]["total"]
            )
            for key in ("bytes_stored_per_workflow", "db_transactions_per_workflow"):
                row[key] = a[key] / b[key] if b[key] else float("inf")
            found[f"{ours} / {peer}"] = {k: round(v, 2) for k, v in row.items()}
    return found


def problems(systems: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What makes the comparison invalid: another report than agentlog's for the same goal."""
    found: list[str] = []
    shas = {name: tuple(s["report_sha"]) for name, s in systems.items() if "report_sha" in s}
    reference = shas.get("agentlog-tansu") or shas.get("agentlog-kafka")
    for name, sha in shas.items():
        if len(sha) != 1:
            found.append(f"{name} wrote {len(sha)} different reports for one goal")
        elif reference is not None and sha != reference:
            found.append(f"{name} wrote another report than agentlog ({sha} vs {reference})")
    return found


def table(out: Mapping[str, Any]) -> str:
    """The results as two plain-text tables: rate and latency per level, then cost per workflow."""
    lines = [
        f"{'system':<16} {'in flight':>9} {'wf/s':>8} {'p50 ms':>8} {'p95 ms':>8}",
    ]
    summary = [
        f"{'system':<16} {'CPU ms/wf':>10} {'bytes/wf':>10} {'÷ raw':>6} {'xacts/wf':>9}",
    ]
    cpu_lines: list[str] = []
    for name, s in out["systems"].items():
        if "runs" not in s:
            lines.append(f"{name:<16} not run: {s.get('not_run', s.get('error'))}")
            continue
        levels = list(s["runs"].items())
        if s.get("single_workflow"):
            levels.insert(0, ("1", s["single_workflow"]))
        for level, run in levels:
            lat = run["latency_ms"]
            lines.append(
                f"{name:<16} {level:>9} {run['workflows_per_s']:>8.1f}"
                f" {lat['p50']:>8.1f} {lat['p95']:>8.1f}"
            )
        summary.append(
            f"{name:<16} {s['cpu_ms_per_workflow']['total']:>10.1f}"
            f" {s['bytes_stored_per_workflow']:>10,} {s.get('bytes_stored_over_raw', 0):>6.2f}"
            f" {s['db_transactions_per_workflow']:>9.2f}"
        )
        cpu = ", ".join(f"{k} {v:g}" for k, v in s["cpu_ms_per_workflow"].items() if k != "total")
        cpu_lines.append(f"{name:<16} {cpu}")
        idle = s.get("idle_cpu_ms_per_s", {}).get("total")
        if idle is not None:
            cpu_lines.append(f"{'':<16} idle, no workflow running: {idle:g} ms of CPU per second")
    ratio_lines = [
        f"{pair:<30} " + ", ".join(f"{k} {v:g}" for k, v in row.items())
        for pair, row in out.get("ratios", {}).items()
    ]
    raw = out.get("raw_baseline")
    if raw is not None:
        summary.append(f"{'raw (1 row/step)':<16} {'':>10} {raw['bytes_per_workflow']:>10,}")
    ratio_title = "agentlog / peer (above 1: agentlog has more of it)"
    cpu_title = "CPU ms per workflow, by process"
    return "\n".join(
        [*lines, "", *summary, "", cpu_title, *cpu_lines, "", ratio_title, *ratio_lines]
    )
