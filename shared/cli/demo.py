"""`agentlog demo` (what `make demo` runs): the whole product, end to end, in one command.

Starts the embedded stack (unless one is already running) and the five services as separate
processes, publishes a sample goal, prints the completion event, the workflow's timeline and
its trace (the services run with the ``file`` span exporter on), and stops everything it
started. Exits non-zero when the workflow does not complete.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated
from uuid import uuid4

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table

from schemas.messages import CompletionEvent, GoalSubmitted
from shared.commands import (
    WaitTimeoutError,
    publish_goal,
    receive_completion,
    wait_for_completion,
)
from shared.console.settings import DEFAULT_PORT, ConsoleSettings
from shared.eventstore.postgres import PostgresEventStore
from shared.readside.queries import TimelineRow, timeline
from shared.runtime.processes import ServiceProcesses
from shared.settings import Settings
from shared.stack import EmbeddedStack
from shared.telemetry.spans import render_span_tree, workflow_spans
from shared.telemetry.tracing import Tracing
from shared.telemetry.tracing_flow import goal_published

__all__ = ["SAMPLE_CONSTRAINTS", "SAMPLE_GOAL", "demo"]

# Wide enough for the timeline even when stdout is not a terminal (rich assumes 80 columns).
console = Console(width=None if Console().is_terminal else 140)

SAMPLE_GOAL = "Explain how agentlog replays, audits and rolls back a workflow from its event log"
# "avoid: simply" makes the first draft fail the critic when a cited passage uses the word,
# so the demo usually shows the reflection loop at work.
SAMPLE_CONSTRAINTS = ["avoid: simply", "max words: 400"]


def demo(
    goal: Annotated[str, typer.Option(help="The goal to submit.")] = SAMPLE_GOAL,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for completion.")] = 75.0,
) -> None:
    """End-to-end demo: the stack, the services, one goal."""
    started = time.monotonic()
    state_dir = Path.cwd() / ".agentlog"
    stack = EmbeddedStack(state_dir)
    owned_stack = not stack.status().running
    info = stack.up()
    console.print(f"[bold]stack[/]: postgres {info.database_url}  broker {info.kafka_bootstrap}")
    env = {
        "AGENTLOG_DATABASE_URL": info.database_url,
        "AGENTLOG_KAFKA_BOOTSTRAP": info.kafka_bootstrap,
        "AGENTLOG_DOCS_DIR": str(Path.cwd() / "docs"),
        # Every service writes its spans to .agentlog/traces/, which the trace below reads.
        "AGENTLOG_STATE_DIR": str(state_dir),
        "AGENTLOG_OTEL_EXPORTER": "file",
    }
    settings = Settings(
        database_url=info.database_url,
        kafka_bootstrap=info.kafka_bootstrap,
        state_dir=state_dir,
        otel_exporter="file",
    )
    tracing = Tracing.configure("demo", settings)
    services = ServiceProcesses(env, state_dir / "logs")
    completion: CompletionEvent | None = None
    rows: list[TimelineRow] = []
    try:
        services.start()
        console.print(f"[bold]services[/]: {', '.join(services.processes)} started")
        goal_message = GoalSubmitted(
            workflow_id=f"wf-demo-{uuid4().hex[:8]}",
            goal=goal,
            constraints=SAMPLE_CONSTRAINTS,
            requested_by="make demo",
        )
        completion, rows = asyncio.run(_submit_and_wait(settings, goal_message, timeout))
    except WaitTimeoutError as exc:
        console.print(f"[red]{exc}[/]")
        for name in services.processes:
            console.print(f"[dim]--- {name} log ---\n{services.log_tail(name, 15)}[/]")
    finally:
        services.stop()  # each service flushes its spans as it exits
        tracing.shutdown()
        if owned_stack:
            stack.down()
    if completion is not None:
        _show(completion, rows)
        _show_trace(state_dir, completion.workflow_id)
    console.print(f"[bold]demo finished in {time.monotonic() - started:.1f}s[/]")
    console.print(f"[bold]console[/]: {_console_hint(owned_stack)}", soft_wrap=True)
    if completion is None or completion.outcome != "completed":
        raise typer.Exit(1)


async def _submit_and_wait(
    settings: Settings, goal: GoalSubmitted, timeout_s: float
) -> tuple[CompletionEvent, list[TimelineRow]]:
    # Listen like a downstream system first, then publish like an upstream one.
    received = asyncio.create_task(receive_completion(settings, goal.workflow_id, timeout_s))
    with goal_published(goal.workflow_id):
        await publish_goal(settings, goal)
    console.print(f"[bold]goal[/]: {goal.goal!r} → workflow {goal.workflow_id}")
    async with PostgresEventStore(settings.require_database_url(), pool_max=2) as store:
        try:
            await wait_for_completion(store, goal.workflow_id, timeout_s)
        except WaitTimeoutError:
            received.cancel()
            raise
        completion = await received
        return completion, timeline(await store.read(goal.workflow_id))


def _console_hint(owned_stack: bool) -> str:
    """Where the web console will answer (docs/console.md), and how to start it."""
    try:
        settings = ConsoleSettings()
        host, port = settings.host, settings.port
    except ValueError:  # malformed console settings: `agentlog console` itself says why
        host, port = "127.0.0.1", DEFAULT_PORT
    start = "agentlog up && agentlog console" if owned_stack else "agentlog console"
    return escape(f"run `{start}` → http://{host}:{port}")


def _show(completion: CompletionEvent, rows: list[TimelineRow]) -> None:
    console.rule("completion event (agentlog.completions)")
    console.print_json(completion.model_dump_json())
    if completion.report:
        console.rule("report")
        console.print(Markdown(completion.report))
    table = Table(title=f"timeline of {completion.workflow_id}")
    for column in ("pos", "ver", "type", "agent", "summary", "time"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.position),
            str(row.version),
            row.type,
            row.agent,
            escape(row.summary),
            row.time[11:23],
        )
    console.print(table)


def _show_trace(state_dir: Path, workflow_id: str) -> None:
    console.rule(f"trace of {workflow_id} (agentlog trace {workflow_id})")
    for line in render_span_tree(workflow_spans(state_dir, workflow_id)) or ["no spans exported"]:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
