"""`agentlog state | rollback | fork | diff | replay`: time travel over the event log.

Queries come from ``shared.readside.queries`` and publishing from ``shared.commands``, the same
code the Python client calls. Exit codes as for the workflow commands: 2 for wrong input, 1 when
the store rules a request out or the operation failed, 3 when ``--wait`` timed out; ``replay``
exits 1 when any workflow drifts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any
from uuid import uuid4

import typer
from pydantic import BaseModel, ValidationError
from rich.markup import escape

from schemas.messages import CompletionEvent, ForkWorkflow, RollbackWorkflow
from shared.agents.constraints import constraint_problem
from shared.cli.stack import load_cli_settings
from shared.cli.workflows import (
    _AsJson,
    _check_id,
    _error,
    _kafka,
    _print_json,
    _resolve,
    _run,
    _store,
    _WorkflowId,
    console,
    err_console,
    prompt_pins,
)
from shared.commands import (
    WaitTimeoutError,
    check_fork,
    check_rollback,
    publish_fork,
    publish_rollback,
    runs_finished,
    wait_for_completion,
)
from shared.domain import FLEET_STREAM
from shared.domain.replayer import Drift, find_drift
from shared.eventstore import EventStore
from shared.readside import queries

__all__ = ["diff", "fork", "replay", "rollback", "state"]

_Wait = Annotated[
    bool, typer.Option("--wait", help="Wait for the next outcome and print its completion event.")
]
_Timeout = Annotated[float, typer.Option(help="Seconds to wait with --wait.")]
_SHOWN_CHARS = 400  # a report in the text diff; --json has it whole


def state(
    workflow_id: _WorkflowId,
    at: Annotated[int, typer.Option("--at", help="The version (event) to show the state after.")],
    as_json: _AsJson = False,
) -> None:
    """Show a workflow's state as it stood after one event.

    Reads only events 1..VERSION: what the supervisor knew right then.
    """
    _check_id(workflow_id)
    settings = load_cli_settings()

    async def _state() -> dict[str, Any]:
        async with _store(settings) as store:
            return await queries.state_at(store, await _resolve(store, workflow_id), at)

    info = _run(_state())
    if as_json:
        _print_json(info)
        return
    for line in _state_lines(info):
        console.print(escape(line), soft_wrap=True, highlight=False)


def _state_lines(info: dict[str, Any]) -> list[str]:
    event = info["event"]
    tokens = info["tokens"]
    lines = [
        f"workflow_id: {info['workflow_id']}",
        f"version: {info['version']} ({event['type']}: {event['summary']})",
        f"status: {info['status']}",
        f"run: {info['run']}",
        f"goal: {info['goal']}",
        f"constraints: {'; '.join(info['constraints']) or 'none'}",
    ]
    if info["forked_from"]:
        lines.append(f"forked from: {info['forked_from']} at version {info['forked_at_version']}")
    abandoned = info["abandoned_versions"]
    lines.append(f"abandoned versions: {', '.join(map(str, abandoned)) or 'none'}")
    lines.append(f"open tasks: {'' if info['open_tasks'] else 'none'}")
    lines += [f"  {t['task_id']} ({t['agent']}) attempt {t['attempt']}" for t in info["open_tasks"]]
    passages = [p["source_id"] for p in info["passages"]]
    lines.append(f"passages: {len(passages)}{' (' + ', '.join(passages) + ')' if passages else ''}")
    lines.append(f"drafts: {'' if info['drafts'] else 'none'}")
    lines += [f"  revision {d['revision']}: {d['words']} words" for d in info["drafts"]]
    lines.append(f"critiques: {'' if info['critiques'] else 'none'}")
    lines += [
        f"  revision {c['revision']}: {c['verdict']} ({c['score']:.2f})" for c in info["critiques"]
    ]
    lines.append(f"manifest_version: {info['manifest_version'] or 'none yet'}")
    lines.append(
        f"tokens: {tokens['total']} ({tokens['prompt']} prompt + {tokens['completion']} completion)"
    )
    if info["reason"]:
        lines.append(f"reason: {info['reason']}")
    return lines


def _validated(build: Callable[[], BaseModel]) -> Any:
    """The message ``build`` makes, or exit 2 naming the field that is wrong."""
    try:
        return build()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        _error(f"invalid request: {problems}")
        raise typer.Exit(2) from None


def _finish(
    call: Coroutine[Any, Any, dict[str, Any]], *, wait: bool, as_json: bool, said: str
) -> None:
    """Run a control request; print what was asked, and the completion when waited for."""
    try:
        result = _run(call)
    except WaitTimeoutError as exc:
        err_console.print(f"[red]timeout:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(3) from None
    if as_json:
        _print_json(result)
    elif wait:
        console.print_json(data=result)
    else:
        console.print(escape(said.format(**result)), soft_wrap=True)
    if wait and result.get("outcome") != "completed":
        raise typer.Exit(1)


def rollback(
    workflow_id: _WorkflowId,
    to: Annotated[int, typer.Option("--to", help="The version to roll back to.")],
    reason: Annotated[str, typer.Option(help="Why; recorded in the log.")],
    wait: _Wait = False,
    timeout: _Timeout = 120.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the request (or the completion) as JSON.")
    ] = False,
) -> None:
    """Roll a workflow back to an earlier event.

    The supervisor appends WorkflowRolledBack: work up to VERSION is reused, the next step runs
    again, and the events after VERSION stay in the log as an abandoned branch. Works on
    running and finished workflows; --wait prints the next completion (a finished workflow's
    names the one it supersedes).
    """
    _check_id(workflow_id)
    settings = load_cli_settings()
    message: RollbackWorkflow = _validated(
        lambda: RollbackWorkflow(workflow_id=workflow_id, to_version=to, reason=reason)
    )

    async def _rollback() -> dict[str, Any]:
        async with _store(settings) as store:
            resolved = await _resolve(store, workflow_id)
            before = await check_rollback(store, resolved, to)
            request = message.model_copy(update={"workflow_id": resolved})
            ce_id = await _kafka(settings, lambda: publish_rollback(settings, request))
            if not wait:
                return {"workflow_id": resolved, "to_version": to, "event_id": ce_id}
            if not as_json:
                console.print(f"rollback of {resolved} to version {to} requested", soft_wrap=True)
            completion = await wait_for_completion(
                store, resolved, timeout, after_run=runs_finished(before), caused_by=ce_id
            )
            return completion.model_dump(mode="json")

    _finish(
        _rollback(),
        wait=wait,
        as_json=as_json,
        said="rollback of {workflow_id} to version {to_version} requested (event {event_id})",
    )


def fork(
    workflow_id: _WorkflowId,
    at: Annotated[int, typer.Option("--at", help="The version to fork from.")],
    new_id: Annotated[
        str | None,
        typer.Option("--workflow-id", help="The new workflow's id (default: a fresh one)."),
    ] = None,
    constraint: Annotated[
        list[str] | None,
        typer.Option("--constraint", "-c", help="Replaces the parent's constraints; repeatable."),
    ] = None,
    max_revisions: Annotated[int | None, typer.Option(help="Override the revise limit.")] = None,
    reason: Annotated[str, typer.Option(help="Why; recorded in the log.")] = "",
    wait: _Wait = False,
    timeout: _Timeout = 120.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the request (or the completion) as JSON.")
    ] = False,
    prompt: Annotated[
        list[str] | None,
        typer.Option("--prompt", help="Run the fork with another prompt version: writer=2.0.0."),
    ] = None,
) -> None:
    """Start a new workflow from another one's state at a version.

    The fork copies the parent's effective history up to VERSION (reused, not run again), may
    change the constraints and the revise limit, and runs on from there. The parent is
    untouched.
    """
    _check_id(workflow_id)
    settings = load_cli_settings()
    message: ForkWorkflow = _validated(
        lambda: ForkWorkflow(
            workflow_id=new_id or f"wf-{uuid4().hex}",
            parent_workflow_id=workflow_id,
            at_version=at,
            constraints=constraint,
            max_revisions=max_revisions,
            reason=reason,
            prompts=prompt_pins(prompt) if prompt else None,
        )
    )
    problem = constraint_problem(message.constraints or [])
    if problem is not None:
        _error(problem)
        raise typer.Exit(2)

    async def _fork() -> dict[str, Any]:
        async with _store(settings) as store:
            parent = await _resolve(store, workflow_id)
            request = message.model_copy(update={"parent_workflow_id": parent})
            await check_fork(store, request)
            ce_id = await _kafka(settings, lambda: publish_fork(settings, request))
            if not wait:
                return {
                    "workflow_id": request.workflow_id,
                    "parent_workflow_id": parent,
                    "at_version": at,
                    "event_id": ce_id,
                }
            if not as_json:
                console.print(
                    f"forked {parent} at version {at} as {request.workflow_id}", soft_wrap=True
                )
            completion: CompletionEvent = await wait_for_completion(
                store, request.workflow_id, timeout
            )
            return completion.model_dump(mode="json")

    _finish(
        _fork(),
        wait=wait,
        as_json=as_json,
        said="forked {parent_workflow_id} at version {at_version} as {workflow_id} "
        "(event {event_id})",
    )


def diff(
    workflow_a: Annotated[str, typer.Argument(help="A workflow id or a unique prefix.")],
    workflow_b: Annotated[str, typer.Argument(help="Another workflow id or unique prefix.")],
    as_json: _AsJson = False,
) -> None:
    """Show where two workflows' runs part, and what differs after.

    Compares the effective histories event by event (ignoring task ids, deadlines, timestamps
    and provenance); a fork shares its parent's events up to the fork point.
    """
    _check_id(workflow_a)
    _check_id(workflow_b)
    settings = load_cli_settings()

    async def _diff() -> queries.Diff:
        async with _store(settings) as store:
            a = await _resolve(store, workflow_a)
            b = await _resolve(store, workflow_b)
            return queries.diff(await store.read(a), await store.read(b))

    result = _run(_diff())
    if as_json:
        _print_json(result.as_dict())
        return
    for line in _diff_lines(result):
        console.print(escape(line), soft_wrap=True, highlight=False)


def _diff_lines(d: queries.Diff) -> list[str]:
    a, b = d.workflow_a, d.workflow_b
    if not d.diverged:
        lines = [f"{a} and {b} take the same {d.common} steps"]
    else:
        lines = [f"{a} and {b} share {d.common} steps, then part at step {d.common + 1}:"]
        for name, step in ((a, d.a), (b, d.b)):
            where = (
                f"v{step.version} {step.type}: {step.summary}"
                if step is not None and step.version
                else f"{step.type}: {step.summary} (copied from its parent)"
                if step is not None
                else "(no further events)"
            )
            lines.append(f"  {name}: {where}")
        if d.changed:
            lines.append(f"  differs in: {', '.join(d.changed)}")
    for difference in d.differences:
        lines.append(f"{difference.aspect}:")
        for name, value in ((a, difference.a), (b, difference.b)):
            shown = value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "… (--json)"
            lines.append(f"  {name}: " + shown.replace("\n", "\n    "))
    return lines


def replay(
    workflow_ids: Annotated[
        list[str] | None, typer.Argument(help="Workflow ids or unique prefixes.")
    ] = None,
    all_workflows: Annotated[bool, typer.Option("--all", help="Every workflow, in id order.")] = (
        False
    ),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON Lines: one object per workflow.")
    ] = False,
) -> None:
    """Replay recorded histories through today's code.

    Feeds each recorded decision's trigger to today's decide and compares the events it would
    record; calls no agent and no model. Exit 1 when any workflow drifts, naming its first
    drifting event.
    """
    if bool(workflow_ids) == all_workflows:
        _error("name workflows or pass --all (not both)")
        raise typer.Exit(2)
    for workflow_id in workflow_ids or []:
        _check_id(workflow_id)
    settings = load_cli_settings()
    drifted = 0
    checked = 0

    def report(workflow_id: str, events: int, drift: Drift | None) -> None:
        nonlocal drifted, checked
        checked += 1
        drifted += drift is not None
        if as_json:
            found = None if drift is None else _drift_json(drift)
            line = {"workflow_id": workflow_id, "events": events, "drift": found}
            print(json.dumps(line, ensure_ascii=False), flush=True)
        elif drift is None:
            console.print(f"ok     {workflow_id} ({events} events)", soft_wrap=True)
        else:
            console.print(
                escape(f"DRIFT  {workflow_id}: {drift.detail}"), soft_wrap=True, highlight=False
            )
            console.print(escape(f"  recorded: {'; '.join(drift.recorded) or 'nothing'}"))
            console.print(escape(f"  decided:  {'; '.join(drift.decided) or 'nothing'}"))

    async def _replay() -> None:
        async with _store(settings) as store:
            async for workflow_id in _workflows(store, workflow_ids or [], all_workflows):
                records = await store.read(workflow_id)
                report(workflow_id, len(records), find_drift(workflow_id, records))

    _run(_replay())
    if not as_json:
        console.print(f"replayed {checked} workflow(s): {drifted} drifted", soft_wrap=True)
    if drifted:
        raise typer.Exit(1)


async def _workflows(store: EventStore, named: list[str], every: bool) -> AsyncIterator[str]:
    """The workflows to replay: the named ones resolved, or every stream page by page."""
    if not every:
        for workflow_id in named:
            yield await _resolve(store, workflow_id)
        return
    after = ""
    while heads := await store.stream_heads(after, limit=500):
        for head in heads:
            if head.stream_id != FLEET_STREAM:  # operator switches, not a workflow
                yield head.stream_id
        after = heads[-1].stream_id


def _drift_json(drift: Drift) -> dict[str, Any]:
    return {
        "version": drift.version,
        "recorded": drift.recorded,
        "decided": drift.decided,
        "detail": drift.detail,
    }
