"""`agentlog submit | status | history | list | cancel`.

Every failure a user can cause ends in one line on stderr and a non-zero exit: 1 when the
operation failed (no such workflow, a backend unreachable), 2 when the input or the settings
are wrong (an invalid or ambiguous id, no backend configured), 3 when ``--wait`` timed out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import typer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from schemas.base import Identifier
from schemas.controls import Budget
from schemas.messages import CancelWorkflow, GoalSubmitted
from shared.agents.constraints import constraint_problem
from shared.cli.stack import load_cli_settings
from shared.commands import (
    RefusedError,
    WaitTimeoutError,
    check_cancel,
    check_goal,
    open_store,
    publish_cancel,
    publish_goal,
    wait_for_completion,
)
from shared.domain import FLEET_STREAM, STATUS_NEUTRAL_EVENTS, WorkflowState, status_after
from shared.domain.budget import budget_problem
from shared.eventstore import EventStore, StoreUnavailableError
from shared.llm.prompts import UnknownPromptError, load_prompt
from shared.readside.queries import (
    NotFoundError,
    TimelineRow,
    read_state,
    status_summary,
    timeline,
)
from shared.runtime.wiring import ConfigurationError
from shared.settings import Settings, StackNotConfiguredError
from shared.telemetry.tracing import Tracing
from shared.telemetry.tracing_flow import goal_published

__all__ = ["CliError", "cancel", "history", "list_workflows", "status", "submit"]

_T = TypeVar("_T")
console = Console()
err_console = Console(stderr=True)

# A wrong address must fail fast: asyncpg waits 60 s to connect by default, aiokafka longer.
CONNECT_TIMEOUT_S = 10.0
_AMBIGUOUS_SHOWN = 5
_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)
# Raised by asyncpg and the store when the database cannot be used (not by a bad request).
_DATABASE_ERRORS = (
    OSError,
    TimeoutError,
    ValueError,  # a malformed DSN (asyncpg's ClientConfigurationError is one)
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    StoreUnavailableError,
)


class CliError(Exception):
    """A failure to report in one line, with the process's exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    # aiokafka logs each failed connection attempt; the CLI reports the outcome once instead.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(coro)
    except CliError as exc:
        _error(str(exc))
        raise typer.Exit(exc.code) from None
    except (RefusedError, NotFoundError) as exc:  # the store rules the request out
        _error(str(exc))
        raise typer.Exit(1) from None
    except ConfigurationError as exc:  # no backend configured, no signing key
        _error(str(exc))
        raise typer.Exit(2) from None
    except WaitTimeoutError:
        raise  # a TimeoutError, hence an OSError: the caller reports it with its own exit code
    except StoreUnavailableError as exc:
        _error(f"lost the connection to Postgres: {_reason(exc)}")
        raise typer.Exit(1) from None
    except (KafkaError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        _error(_reason(exc))
        raise typer.Exit(1) from None


def _error(message: str) -> None:
    err_console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)


def _reason(exc: BaseException) -> str:
    """What went wrong, in a few words."""
    if isinstance(exc, StoreUnavailableError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, TimeoutError | KafkaTimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_S:.0f}s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _origin(settings: Settings, variable: str, explicit: str | None) -> str:
    return variable if explicit else f"from {settings.state_dir / 'stack.json'}"


def _postgres_address(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port or 5432}" if parts.hostname else url.split("@")[-1]
    except ValueError:
        return "the configured address"


@asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[EventStore]:
    """The event store, connected within CONNECT_TIMEOUT_S or a CliError naming the address."""
    url = settings.require_database_url()
    store = open_store(settings)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await store.start()
    except _DATABASE_ERRORS as exc:
        where = _origin(settings, "AGENTLOG_DATABASE_URL", settings.database_url)
        raise CliError(
            f"cannot reach Postgres at {_postgres_address(url)} ({where}): {_reason(exc)}"
        ) from None
    try:
        yield store
    finally:
        await store.stop()


async def _kafka(settings: Settings, call: Callable[[], Awaitable[_T]]) -> _T:
    """Run a publish within CONNECT_TIMEOUT_S; failures become a CliError naming the broker."""
    bootstrap = settings.require_kafka_bootstrap()
    where = _origin(settings, "AGENTLOG_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            return await call()
    except (KafkaConnectionError, KafkaTimeoutError, OSError, TimeoutError) as exc:
        reason = await _probe(bootstrap) or _reason(exc)
        raise CliError(f"cannot reach Kafka at {bootstrap} ({where}): {reason}") from None
    except KafkaError as exc:
        raise CliError(f"Kafka at {bootstrap} ({where}) refused: {_reason(exc)}") from None


async def _probe(bootstrap: str) -> str | None:
    """Why the first bootstrap server fails, from a plain TCP connect (aiokafka won't say)."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        async with asyncio.timeout(3.0):
            _, writer = await asyncio.open_connection(host or "localhost", int(port))
    except ValueError:
        return "not a host:port address"
    except (OSError, TimeoutError) as exc:
        return _reason(exc) if not isinstance(exc, TimeoutError) else "no answer"
    writer.close()
    return "something listens there, but it does not answer as a Kafka broker"


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _check_id(workflow_id: str) -> None:
    """Refuse an id no workflow can have before connecting to anything (exit 2)."""
    try:
        _IDENTIFIER.validate_python(workflow_id)
    except ValidationError:
        _error(f"invalid workflow id {workflow_id!r}: use 1-128 letters, digits and . _ : -")
        raise typer.Exit(2) from None


async def _resolve(store: EventStore, workflow_id: str) -> str:
    """The workflow ``workflow_id`` names: itself, or the one workflow it is a prefix of."""
    if await store.stream_version(workflow_id) > 0:
        return workflow_id
    found = await store.find_streams(workflow_id, limit=_AMBIGUOUS_SHOWN + 1)
    if not found:
        raise CliError(f"no workflow {workflow_id!r}")
    if len(found) > 1:
        shown = ", ".join(found[:_AMBIGUOUS_SHOWN])
        more = ", …" if len(found) > _AMBIGUOUS_SHOWN else ""
        raise CliError(f"{workflow_id!r} matches several workflows: {shown}{more}", 2)
    return found[0]


def _has_database(settings: Settings) -> bool:
    try:
        settings.require_database_url()
    except StackNotConfiguredError:
        return False
    return True


def prompt_pins(items: list[str]) -> dict[str, str]:
    """``agent=version`` options as a mapping; an unknown agent or version exits 2."""
    pins: dict[str, str] = {}
    for item in items:
        agent, _, version = item.partition("=")
        try:
            load_prompt(agent.strip(), version.strip() or None)
        except (UnknownPromptError, ValueError) as exc:
            _error(f"--prompt {item!r}: {exc}")
            raise typer.Exit(2) from None
        pins[agent.strip()] = version.strip()
    return pins


def submit(
    goal: Annotated[str, typer.Argument(help="What the agents should research and write.")],
    constraint: Annotated[
        list[str] | None,
        typer.Option("--constraint", "-c", help="e.g. 'avoid: jargon', 'max words: 300'."),
    ] = None,
    workflow_id: Annotated[str | None, typer.Option(help="Choose the workflow id.")] = None,
    max_revisions: Annotated[int | None, typer.Option(help="Override the revise limit.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the outcome and print the completion event.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 120.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the ids (or the completion) as JSON.")
    ] = False,
    max_steps: Annotated[int | None, typer.Option(help="Budget: agent steps.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Budget: model tokens.")] = None,
    max_usd: Annotated[float | None, typer.Option(help="Budget: model cost in USD.")] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Budget: wall time.")] = None,
    approve: Annotated[
        list[str] | None,
        typer.Option(
            "--approve",
            help="A step that waits for a human: search, write, critique, summarize, deliver.",
        ),
    ] = None,
    prompt: Annotated[
        list[str] | None,
        typer.Option("--prompt", help="Pin a prompt version, e.g. writer=2.0.0."),
    ] = None,
) -> None:
    """Publish a goal event, as any upstream system would."""
    settings = load_cli_settings()
    fields: dict[str, Any] = {"goal": goal, "constraints": constraint or []}
    if workflow_id:
        fields["workflow_id"] = workflow_id
    if max_revisions is not None:
        fields["max_revisions"] = max_revisions
    budget = {"max_steps": max_steps, "max_tokens": max_tokens, "max_usd": max_usd}
    budget["max_seconds"] = max_seconds
    fields.update({k: v for k, v in budget.items() if v is not None})
    if approve:
        fields["approval_required"] = approve
    if prompt:
        fields["prompts"] = prompt_pins(prompt)
    try:
        message = GoalSubmitted(**fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        err_console.print(f"[red]invalid goal:[/] {escape(problems)}", soft_wrap=True)
        raise typer.Exit(2) from None
    ceiling = Budget(
        max_steps=settings.budget_ceiling_steps,
        max_tokens=settings.budget_ceiling_tokens,
        max_usd=settings.budget_ceiling_usd,
        max_seconds=settings.budget_ceiling_seconds,
    )
    problem = constraint_problem(message.constraints) or budget_problem(message, ceiling)
    if problem is not None:
        err_console.print(f"[red]invalid goal:[/] {escape(problem)}", soft_wrap=True)
        raise typer.Exit(2)

    async def _submit() -> dict[str, Any] | None:
        if _has_database(settings):
            async with _store(settings) as store:
                # The same goal again is fine (idempotent); another goal under its id is not
                # (without a database to ask, the supervisor still dead-letters it: conflict).
                await check_goal(store, message)
        # The root of the workflow's trace when tracing is on (AGENTLOG_OTEL_EXPORTER); off,
        # no tracer provider is installed (the CLI also runs inside other programs' processes).
        if Tracing.for_settings(settings).enabled:
            tracing = Tracing.configure("cli", settings)
            try:
                with goal_published(message.workflow_id):
                    ce_id = await _kafka(settings, lambda: publish_goal(settings, message))
            finally:
                tracing.shutdown()
        else:
            ce_id = await _kafka(settings, lambda: publish_goal(settings, message))
        if not as_json:
            console.print(
                f"submitted [bold]{message.workflow_id}[/] (event {ce_id})", soft_wrap=True
            )
        if not wait:
            return {"workflow_id": message.workflow_id, "event_id": ce_id}
        async with _store(settings) as store:
            completion = await wait_for_completion(store, message.workflow_id, timeout)
        return completion.model_dump(mode="json")

    try:
        result = _run(_submit())
    except WaitTimeoutError as exc:
        err_console.print(f"[red]timeout:[/] {exc}", soft_wrap=True)
        raise typer.Exit(3) from None
    if as_json:
        _print_json(result)
    elif wait and result is not None:
        console.print_json(data=result)
    if wait and result is not None and result.get("outcome") != "completed":
        raise typer.Exit(1)


_WorkflowId = Annotated[
    str, typer.Argument(help="A workflow id, or any prefix of one that names only one workflow.")
]
_AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def status(workflow_id: _WorkflowId, as_json: _AsJson = False) -> None:
    """Show a workflow's current state, rebuilt from its events."""
    _check_id(workflow_id)
    settings = load_cli_settings()

    async def _status() -> WorkflowState:
        async with _store(settings) as store:
            return await read_state(store, await _resolve(store, workflow_id))

    state = _run(_status())
    info = status_summary(state)
    if as_json:
        _print_json(info)
        return
    for key, value in info.items():
        if key == "open_tasks":
            console.print(f"[bold]open tasks[/]: {'' if state.open_tasks else 'none'}")
            for task in state.open_tasks:
                console.print(f"  {escape(_task_line(task.task_id, task.attempt, task.deadline))}")
        elif key != "reason" or value is not None:
            console.print(f"[bold]{key}[/]: {escape(_show(key, value))}", soft_wrap=True)


def _show(key: str, value: Any) -> str:
    if key == "revision" and value is None:
        return "none yet (no draft)"
    if key == "manifest_version" and value == 0:
        return "none yet"
    if key == "constraints":
        return "; ".join(value) if value else "none"
    if key == "budget":
        return _budget_line(value["spent"], value["limits"])
    if key == "waiting_for":
        if value is None:
            return "nothing"
        options = "/".join(value["options"])
        return f"{value['kind']} {value['request_id']}: {value['summary']} [{options}]"
    if key in ("cycles", "strategies", "prompts"):
        return ", ".join(f"{k} {v}" for k, v in value.items()) if value else "none"
    return str(value)


def _budget_line(spent: dict[str, Any], limits: dict[str, Any]) -> str:
    def of(used: object, limit: object, unit: str) -> str:
        return f"{used}{'' if limit is None else f'/{limit}'} {unit}"

    return ", ".join(
        [
            of(spent["steps"], limits["max_steps"], "steps"),
            of(spent["tokens"], limits["max_tokens"], "tokens"),
            of(f"${spent['usd']:.4f}", f"${limits['max_usd']}" if limits["max_usd"] else None, ""),
            of(f"{spent['seconds']:.0f}s", limits["max_seconds"], "").strip(),
        ]
    ).replace(" ,", ",")


def _task_line(task_id: str, attempt: int, deadline: datetime) -> str:
    return f"{task_id} attempt {attempt}, due {deadline.astimezone():%H:%M:%S}"


def history(
    workflow_id: _WorkflowId,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON Lines: one object per event, for jq.")
    ] = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full", help="Add each event's data, causation, correlation, principal, provenance."
        ),
    ] = False,
) -> None:
    """Print a workflow's event timeline.

    One row per event: position, version, run, type, agent, summary, time. Events on a branch a
    rollback abandoned stay in the log and are marked "abandoned".
    """
    _check_id(workflow_id)
    settings = load_cli_settings()

    async def _history() -> tuple[str, list[TimelineRow]]:
        async with _store(settings) as store:
            resolved = await _resolve(store, workflow_id)
            return resolved, timeline(await store.read(resolved), full=full)

    resolved, rows = _run(_history())
    if as_json:
        for row in rows:
            print(json.dumps(row.as_dict(), ensure_ascii=False, default=str))
        return
    if full:
        _print_full(rows)
        return
    _table(
        f"workflow {resolved}",
        ("pos", "ver", "run", "type", "agent", "summary", "time"),
        [
            [
                str(r.position),
                str(r.version),
                str(r.run),
                r.type,
                r.agent,
                f"(abandoned) {r.summary}" if r.abandoned else r.summary,
                r.time,
            ]
            for r in rows
        ],
        fold="summary",
    )


def _print_full(rows: list[TimelineRow]) -> None:
    """Each event as a block: its row, who caused it, and its data as indented JSON."""
    for row in rows:
        mark = "  (abandoned)" if row.abandoned else ""
        print(f"#{row.position}  v{row.version}  run {row.run}  {row.type}  {row.time}{mark}")
        print(f"  {row.agent}: {row.summary}")
        if row.detail is None:
            continue
        detail = row.detail
        for key in ("event_id", "causation_id", "correlation_id", "principal", "actor"):
            print(f"  {key}: {getattr(detail, key)}")
        data = json.dumps(detail.data, indent=2, ensure_ascii=False, default=str)
        print("  data: " + data.replace("\n", "\n  "))
        if detail.sent is not None:
            sent = json.dumps(detail.sent, indent=2, ensure_ascii=False, default=str)
            print("  sent (references expanded): " + sent.replace("\n", "\n  "))
        print()


def list_workflows(
    limit: Annotated[int, typer.Option(help="How many, most recently updated first.")] = 20,
    as_json: _AsJson = False,
) -> None:
    """Recent workflows with their state."""
    settings = load_cli_settings()
    if limit < 1:
        _error(f"--limit must be at least 1, not {limit}")
        raise typer.Exit(2)

    async def _list() -> list[dict[str, object]]:
        async with _store(settings) as store:
            rows: list[dict[str, object]] = []
            for s in await store.list_streams(limit + 1):
                if s.stream_id == FLEET_STREAM:
                    continue  # the operator-wide switches, not a workflow
                state = (
                    (await read_state(store, s.stream_id)).status
                    if s.last_type in STATUS_NEUTRAL_EVENTS
                    else status_after(s.last_type)
                )
                rows.append(
                    {
                        "workflow_id": s.stream_id,
                        "state": state.value,
                        "version": s.version,
                        "last_event": s.last_type,
                        "updated_at": s.updated_at.isoformat(timespec="seconds"),
                    }
                )
            return rows[:limit]

    rows = _run(_list())
    if as_json:
        _print_json(rows)
        return
    _table(
        "workflows",
        ("workflow", "state", "version", "last event", "updated"),
        [[str(v) for v in row.values()] for row in rows],
    )


def _table(title: str, columns: Sequence[str], rows: list[list[str]], fold: str = "") -> None:
    """Ids are never cut: a terminal folds long cells, a pipe gets plain aligned columns."""
    if not console.is_terminal:
        widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
        for line in [list(columns), *rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        return
    table = Table(title=title)
    for column in columns:
        # Every column but the free-text one keeps its cells whole, so ids stay copyable.
        table.add_column(column, no_wrap=column != fold, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)


def cancel(
    workflow_id: _WorkflowId,
    reason: Annotated[str, typer.Option(help="Recorded in the log.")] = "cancelled by operator",
) -> None:
    """Cancel a running workflow (the kill-switch).

    The supervisor records WorkflowCancelled and stops the workflow. An unknown or finished
    workflow is an error.
    """
    _check_id(workflow_id)
    settings = load_cli_settings()

    async def _cancel() -> str:
        async with _store(settings) as store:
            resolved = await _resolve(store, workflow_id)
            await check_cancel(store, resolved)
        try:
            message = CancelWorkflow(workflow_id=resolved, reason=reason)
        except ValidationError as exc:
            raise CliError(f"invalid reason: {exc.errors()[0]['msg']}", 2) from None
        await _kafka(settings, lambda: publish_cancel(settings, message))
        return resolved

    resolved = _run(_cancel())
    console.print(f"cancel requested for {resolved}", soft_wrap=True)
