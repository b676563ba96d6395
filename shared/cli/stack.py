"""`agentlog stack up|down|status`: the embedded Postgres and Kafka-protocol broker.

Connection settings go to stdout as ``AGENTLOG_...=`` lines (and one ``export`` line) that a
shell can ``eval``; everything meant for people goes to stderr, so
``eval "$(agentlog stack status)"`` is safe.
"""

from __future__ import annotations

import json
import shlex
from typing import Annotated

import typer

from shared.settings import Settings
from shared.stack import ComponentStatus, EmbeddedStack, Outcome, StackError

__all__ = ["stack_app"]

stack_app = typer.Typer(
    help="Start and stop the embedded Postgres and Kafka-protocol broker.",
    no_args_is_help=True,
)

_BROKER_DATA_LOST = (
    "warning: the broker had stopped and was restarted. It keeps data in memory only, so its "
    "topics, offsets and consumer groups are gone: restart the services, which re-create their "
    "topics and resume from the event store."
)


def _stack() -> EmbeddedStack:
    return EmbeddedStack(Settings().state_dir)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _print_settings(database_url: str, kafka_bootstrap: str) -> None:
    # Plain NAME=value lines stay easy to grep and parse; the last line makes `eval` export
    # them, so commands started from that shell see them too.
    typer.echo(f"AGENTLOG_DATABASE_URL={shlex.quote(database_url)}")
    typer.echo(f"AGENTLOG_KAFKA_BOOTSTRAP={shlex.quote(kafka_bootstrap)}")
    typer.echo("export AGENTLOG_DATABASE_URL AGENTLOG_KAFKA_BOOTSTRAP")


def _describe(name: str, status: ComponentStatus) -> str:
    where = f" (pid {status.pid}, port {status.port})" if status.pid is not None else ""
    state = "healthy" if status.healthy else "DOWN"
    return f"{name:<9} {state}: {status.detail}{where}"


@stack_app.command()
def up() -> None:
    """Start Postgres and the broker, or restart whichever has died; harmless when running."""
    stack = _stack()
    try:
        info = stack.up()
    except StackError as exc:
        _say(f"error: {exc}")
        raise typer.Exit(1) from exc
    for name, component in (("postgres", info.postgres), ("broker", info.broker)):
        _say(f"{name:<9} {component.outcome}: pid {component.pid}, port {component.port}")
    if info.broker.outcome is Outcome.RESTARTED:
        _say(_BROKER_DATA_LOST)
    _say(f"state in {stack.state_dir}")
    _print_settings(info.database_url, info.kafka_bootstrap)


@stack_app.command()
def down() -> None:
    """Stop Postgres and the broker; leaves no process behind. Harmless when stopped."""
    stack = _stack()
    before = stack.status()
    try:
        stack.down()
    except StackError as exc:
        _say(f"error: {exc}")
        raise typer.Exit(1) from exc
    stopped = [
        f"{name} (pid {status.pid})"
        for name, status in (("postgres", before.postgres), ("broker", before.broker))
        if status.pid is not None
    ]
    _say(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


@stack_app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Print the connection settings (eval-able); exit 1 if the stack is not running."""
    current = _stack().status()
    if as_json:
        typer.echo(json.dumps(current.to_json(), indent=2))
    else:
        _say(_describe("postgres", current.postgres))
        _say(_describe("broker", current.broker))
        if current.running and current.database_url and current.kafka_bootstrap:
            _print_settings(current.database_url, current.kafka_bootstrap)
        else:
            _say("the stack is not running: start it with `agentlog stack up`")
    if not current.running:
        raise typer.Exit(1)
