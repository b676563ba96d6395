"""`agentlog submit | status | history | list | cancel`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from schemas.messages import CancelWorkflow, GoalSubmitted
from shared.cli.client import (
    WaitTimeoutError,
    open_store,
    publish_cancel,
    publish_goal,
    read_state,
    wait_for_completion,
)
from shared.cli.timeline import timeline
from shared.domain import status_after
from shared.settings import StackNotConfiguredError, load_settings

__all__ = ["cancel", "history", "list_workflows", "status", "submit"]

_T = TypeVar("_T")
console = Console()
err_console = Console(stderr=True)


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    try:
        return asyncio.run(coro)
    except StackNotConfiguredError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def submit(
    goal: Annotated[str, typer.Argument(help="What the agents should research and write.")],
    constraint: Annotated[
        list[str] | None,
        typer.Option("--constraint", "-c", help="e.g. 'avoid: jargon', 'max words: 300'."),
    ] = None,
    workflow_id: Annotated[str | None, typer.Option(help="Choose the workflow id.")] = None,
    max_revisions: Annotated[int | None, typer.Option(help="Override the revise limit.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Print the completion event.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 120.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Publish a goal event (the same message any upstream system publishes)."""
    settings = load_settings()
    fields: dict[str, Any] = {"goal": goal, "constraints": constraint or []}
    if workflow_id:
        fields["workflow_id"] = workflow_id
    if max_revisions is not None:
        fields["max_revisions"] = max_revisions
    try:
        message = GoalSubmitted(**fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        err_console.print(f"[red]invalid goal:[/] {escape(problems)}")
        raise typer.Exit(2) from None

    async def _submit() -> dict[str, Any] | None:
        ce_id = await publish_goal(settings, message)
        if not as_json:
            console.print(f"submitted [bold]{message.workflow_id}[/] (event {ce_id})")
        if not wait:
            return {"workflow_id": message.workflow_id, "event_id": ce_id}
        async with open_store(settings) as store:
            completion = await wait_for_completion(store, message.workflow_id, timeout)
        return completion.model_dump(mode="json")

    try:
        result = _run(_submit())
    except WaitTimeoutError as exc:
        err_console.print(f"[red]timeout:[/] {exc}")
        raise typer.Exit(3) from None
    if as_json:
        _print_json(result)
    elif wait and result is not None:
        console.print_json(data=result)
    if wait and result is not None and result.get("outcome") != "completed":
        raise typer.Exit(1)


def status(
    workflow_id: str,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a workflow's current state, rebuilt from its events."""
    settings = load_settings()

    async def _status() -> dict[str, Any]:
        async with open_store(settings) as store:
            state = await read_state(store, workflow_id)
        return {
            "workflow_id": workflow_id,
            "status": state.status.value,
            "version": state.version,
            "goal": state.goal,
            "constraints": state.constraints,
            "revision": state.revision,
            "manifest_version": state.manifest.manifest_version if state.manifest else 0,
            "memory_chars": state.memory_chars,
            "open_tasks": [
                {
                    "task_id": t.task_id,
                    "agent": t.agent,
                    "attempt": t.attempt,
                    "deadline": t.deadline.isoformat(),
                }
                for t in state.open_tasks
            ],
            "reason": state.outcome_reason,
        }

    info = _run(_status())
    if info["version"] == 0:
        err_console.print(f"[red]no workflow {workflow_id!r}[/]")
        raise typer.Exit(1)
    if as_json:
        _print_json(info)
        return
    for key, value in info.items():
        console.print(f"[bold]{key}[/]: {escape(str(value))}")


def history(
    workflow_id: str,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Print the workflow's event timeline (position, version, type, agent, summary, time)."""
    settings = load_settings()

    async def _history() -> list[dict[str, object]]:
        async with open_store(settings) as store:
            return [row.as_dict() for row in timeline(await store.read(workflow_id))]

    rows = _run(_history())
    if not rows:
        err_console.print(f"[red]no workflow {workflow_id!r}[/]")
        raise typer.Exit(1)
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"workflow {workflow_id}")
    for column in ("pos", "ver", "type", "agent", "summary", "time"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(escape(str(v)) for v in row.values()))
    console.print(table)


def list_workflows(
    limit: Annotated[int, typer.Option(help="How many.")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recent workflows with their state."""
    settings = load_settings()

    async def _list() -> list[dict[str, object]]:
        async with open_store(settings) as store:
            streams = await store.list_streams(limit)
            return [
                {
                    "workflow_id": s.stream_id,
                    "state": status_after(s.last_type).value,
                    "version": s.version,
                    "last_event": s.last_type,
                    "updated_at": s.updated_at.isoformat(timespec="seconds"),
                }
                for s in streams
            ]

    rows = _run(_list())
    if as_json:
        _print_json(rows)
        return
    table = Table(title="workflows")
    for column in ("workflow", "state", "version", "last event", "updated"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)


def cancel(
    workflow_id: str,
    reason: Annotated[str, typer.Option(help="Recorded in the log.")] = "cancelled by operator",
) -> None:
    """Pull the kill-switch: the supervisor records WorkflowCancelled and stops the workflow."""
    settings = load_settings()
    _run(publish_cancel(settings, CancelWorkflow(workflow_id=workflow_id, reason=reason)))
    console.print(f"cancel requested for {workflow_id}")
