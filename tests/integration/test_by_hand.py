"""README's "Working with a stack by hand", followed literally in a fresh folder: nothing stays.

One shell script runs the README's commands (``stack up``, ``eval "$(agentlog stack status)"``,
the five ``agentlog run <service> &``, ``submit --wait``, ``history``, ``stack down``) in a temp
project with its own stack and its own copy of the docs corpus, then the test checks with psutil
that no process of the stack (Postgres with its children, the broker) or of the services is left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from shared.stack import EmbeddedStack
from shared.stack.process import wait_until
from tests.kafka_available import needs_kafka

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("supervisor", "search", "writer", "critic", "summarizer")

# The README's block, with the pids and outputs the test checks written to files.
_SCRIPT = """
set -eu
agentlog stack up --broker {broker}
eval "$(agentlog stack status)"
for service in {services}; do
    agentlog run "$service" >"$service.out" 2>&1 &
    echo "$service $!" >>service-pids
done
agentlog submit "Explain how replay works" -c "max words: 300" --wait | tee submit.out
workflow=$(sed -n 's/^submitted \\([^ ]*\\) .*/\\1/p' submit.out)
agentlog history "$workflow" >history.out
agentlog stack status --json >status.json
python -c "$CHILDREN" >stack-children
agentlog stack down 2>down.out
"""
# Postgres forks a process per backend and helper: they must go too, so list them before down.
_CHILDREN = """
import json, psutil
status = json.load(open("status.json"))
for name in ("postgres", "broker"):
    for child in psutil.Process(status[name]["pid"]).children(recursive=True):
        print(child.pid)
"""


def _gone(pid: int) -> bool:
    # Orphans stay zombies until init reaps them: exited all the same.
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _with_children(pid: int) -> set[int]:
    try:
        return {pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))}
    except psutil.NoSuchProcess:
        return {pid}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("broker", ["tansu", pytest.param("kafka", marks=needs_kafka)])
def test_readme_by_hand_section_leaves_nothing_behind(tmp_path: Path, broker: str) -> None:
    """After the README's commands (on either broker) complete a goal and end with
    `stack down`, every process they started is gone."""
    project = tmp_path / "project"
    shutil.copytree(REPO / "docs", project / "docs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLOG_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg")  # the user's own current-stack stays as is
    env["CHILDREN"] = _CHILDREN
    seen: set[int] = set()
    try:
        script = _SCRIPT.format(services=" ".join(SERVICES), broker=broker)
        run = subprocess.run(
            ["bash", "-c", script],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        pids = dict(line.split() for line in (project / "service-pids").read_text().splitlines())
        seen |= {int(pid) for pid in pids.values()}
        assert run.returncode == 0, f"{run.stderr}\n" + "\n".join(
            (project / f"{s}.out").read_text()[-2000:] for s in SERVICES
        )

        status = json.loads((project / "status.json").read_text())
        stack_pids = {status["postgres"]["pid"], status["broker"]["pid"]}
        seen |= stack_pids
        children = {int(p) for p in (project / "stack-children").read_text().split()}
        assert children, "postgres runs helper processes; none were listed"
        seen |= children
        registered = {s["service"]: s["pid"] for s in status["services"]}
        assert registered == {name: int(pid) for name, pid in pids.items()}
        assert all(s["state"] == "ready" for s in status["services"])

        assert '"outcome": "completed"' in (project / "submit.out").read_text()
        assert "WorkflowCompleted" in (project / "history.out").read_text()
        down = (project / "down.out").read_text()
        for name, pid in pids.items():
            assert f"service   {name:<10} stopped (pid {pid})" in down, down

        assert wait_until(lambda: all(_gone(pid) for pid in seen), 10.0), [
            pid for pid in seen if not _gone(pid)
        ]
        assert not list((project / ".agentlog" / "services").glob("*.json"))
        assert not (project / ".agentlog" / "stack.json").exists()
        assert not (tmp_path / "xdg" / "agentlog" / "current-stack").exists()
    finally:
        for started in seen:
            if not _gone(started):
                for leftover in _with_children(started):
                    psutil.Process(leftover).kill()
        EmbeddedStack(project / ".agentlog").down()
