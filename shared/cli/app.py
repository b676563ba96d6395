"""`agentlog`: the stack, the services, and the user's commands on workflows."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Annotated

import typer

from shared.cli.audit import export, verify
from shared.cli.console import console_app
from shared.cli.controls import approvals, approve, budget, deny, pause, resume
from shared.cli.demo import demo
from shared.cli.keys import keys_app
from shared.cli.run import run
from shared.cli.services import down, up
from shared.cli.stack import stack_app
from shared.cli.timetravel import diff, fork, replay, rollback, state
from shared.cli.trace import trace
from shared.cli.workflows import cancel, history, list_workflows, status, submit
from shared.runtime.gc_tuning import tune_gc

__all__ = ["app", "main"]

app = typer.Typer(
    name="agentlog",
    help="Event-sourced orchestration for multi-agent AI work.",
    no_args_is_help=True,
    add_completion=False,
    # Plain help: the rich renderer labels every flag (even --help) with a bogus "<bool>".
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"agentlog {package_version('agentlog')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("agentlog (not installed)")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Event-sourced orchestration for multi-agent AI work."""


app.add_typer(stack_app, name="stack")
app.add_typer(keys_app, name="keys")
app.add_typer(console_app, name="console")
app.command()(up)
app.command()(down)
app.command()(submit)
app.command()(status)
app.command()(history)
app.command("list")(list_workflows)
app.command()(cancel)
app.command()(state)
app.command()(rollback)
app.command()(fork)
app.command()(diff)
app.command()(replay)
app.command()(run)
app.command()(approvals)
app.command()(approve)
app.command()(deny)
app.command()(budget)
app.command()(pause)
app.command()(resume)
app.command()(demo)
app.command()(export)
app.command()(verify)
app.command()(trace)


def main() -> None:
    """Console-script entry point."""
    tune_gc()  # the commands are imported: see shared.runtime.gc_tuning
    app()
