"""`agentlog approvals | approve | deny | budget | pause | resume`: a human in the loop.

Decisions are checked against the store first (one clear line when nothing waits), then
published signed on ``agentlog.approvals``; each command returns once the supervisor recorded
the decision (up to 30 s).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from schemas.messages import ApprovalDecision
from shared.cli.stack import load_cli_settings
from shared.cli.workflows import (
    _AsJson,
    _check_id,
    _kafka,
    _print_json,
    _resolve,
    _run,
    _store,
    _WorkflowId,
    console,
)
from shared.control_commands import (
    check_decision,
    pending_approvals,
    publish_decision,
    publish_pause,
)
from shared.eventstore import EventStore

__all__ = ["approvals", "approve", "budget", "deny", "pause", "resume"]

_Comment = Annotated[str, typer.Option("--comment", help="Recorded with the decision.")]
_RECORDED_WAIT_S = 30.0


def approvals(as_json: _AsJson = False) -> None:
    """What waits for a human, oldest request first."""
    settings = load_cli_settings()

    async def _list() -> list[dict[str, object]]:
        async with _store(settings) as store:
            return [p.as_dict() for p in await pending_approvals(store)]

    rows = _run(_list())
    if as_json:
        _print_json(rows)
        return
    if not rows:
        console.print("nothing waits for approval")
        return
    table = Table(title="pending approvals")
    for column in ("workflow", "request", "kind", "waits for", "options", "deadline"):
        table.add_column(column, no_wrap=column in ("workflow", "request"), overflow="fold")
    for row in rows:
        table.add_row(
            *(
                escape(str(v))
                for v in (
                    row["workflow_id"],
                    row["request_id"],
                    row["kind"],
                    row["summary"],
                    "/".join(row["options"]),  # type: ignore[arg-type]  # a list of options
                    row["deadline"],
                )
            )
        )
    console.print(table)


def _decide(workflow_id: str, **fields: Any) -> None:
    _check_id(workflow_id)
    settings = load_cli_settings()

    async def _publish() -> str:
        async with _store(settings) as store:
            resolved = await _resolve(store, workflow_id)
            decision = ApprovalDecision(workflow_id=resolved, **fields)
            request_id = await check_decision(store, decision)
            decision = decision.model_copy(update={"request_id": request_id})
            ce_id = await _kafka(settings, lambda: publish_decision(settings, decision))
            await _recorded(store, resolved, ce_id)
            return f"{fields['decision']} recorded for {resolved} ({request_id})"

    console.print(_run(_publish()))


async def _recorded(store: EventStore, workflow_id: str, ce_id: str) -> None:
    """Wait until the supervisor recorded the decision (its events name the ce_id)."""
    seen = 0
    async with asyncio.timeout(_RECORDED_WAIT_S), store.watch(workflow_id) as appended:
        while True:
            appended.clear()  # before the read: an append during it sets it again
            records = await store.read(workflow_id, after_version=seen)
            if any(r.metadata.get("causation_id") == ce_id for r in records):
                return
            seen = records[-1].version if records else seen
            # The poll is the floor should a wake-up be lost.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(appended.wait(), 1.0)


def approve(
    workflow_id: _WorkflowId,
    comment: _Comment = "",
    option: Annotated[
        str | None, typer.Option("--option", help="For an escalation: retry, skip or abort.")
    ] = None,
) -> None:
    """Grant what the workflow waits for (a gated step, delivery, or an escalation's option)."""
    _decide(workflow_id, decision="grant", comment=comment, option=option)


def deny(
    workflow_id: _WorkflowId,
    reason: Annotated[str, typer.Option("--reason", help="Why; the workflow fails with it.")],
) -> None:
    """Deny what the workflow waits for: it fails with the reason."""
    _decide(workflow_id, decision="deny", comment=reason)


def budget(
    workflow_id: _WorkflowId,
    add_tokens: Annotated[int, typer.Option("--add-tokens", min=0)] = 0,
    add_usd: Annotated[float, typer.Option("--add-usd", min=0.0)] = 0.0,
    add_steps: Annotated[int, typer.Option("--add-steps", min=0)] = 0,
    add_seconds: Annotated[float, typer.Option("--add-seconds", min=0.0)] = 0.0,
    comment: _Comment = "",
) -> None:
    """Add budget to a workflow waiting after BudgetExhausted; it goes on at once."""
    if not (add_tokens or add_usd or add_steps or add_seconds):
        console.print("[red]error:[/] add something: --add-tokens, --add-usd, --add-steps or ...")
        raise typer.Exit(2)
    _decide(
        workflow_id,
        decision="grant",
        comment=comment,
        add_tokens=add_tokens,
        add_usd=add_usd,
        add_steps=add_steps,
        add_seconds=add_seconds,
    )


_All = Annotated[bool, typer.Option("--all", help="Every workflow (the only scope today).")]
_Reason = Annotated[str, typer.Option("--reason", help="Recorded in the fleet stream.")]


def _switch(paused: bool, every: bool, reason: str) -> None:
    if not every:
        console.print("[red]error:[/] say --all: the switch acts on every workflow")
        raise typer.Exit(2)
    settings = load_cli_settings()
    _run(_kafka(settings, lambda: publish_pause(settings, paused, reason)))
    console.print(f"scheduling {'paused' if paused else 'resumed'} for every workflow")


def pause(every: _All = False, reason: _Reason = "") -> None:
    """Operator-wide kill-switch: no workflow schedules a step until `resume --all`."""
    _switch(True, every, reason)


def resume(every: _All = False, reason: _Reason = "") -> None:
    """Restart scheduling; held workflows schedule their next step."""
    _switch(False, every, reason)
