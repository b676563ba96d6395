"""`agentlog`: the stack, the services, and the user's commands on workflows."""

from __future__ import annotations

import typer

from shared.cli.demo import demo
from shared.cli.run import run
from shared.cli.stack import stack_app
from shared.cli.workflows import cancel, history, list_workflows, status, submit

__all__ = ["app", "main"]

app = typer.Typer(
    name="agentlog",
    help="Event-sourced orchestration for multi-agent AI work.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(stack_app, name="stack")
app.command()(submit)
app.command()(status)
app.command()(history)
app.command("list")(list_workflows)
app.command()(cancel)
app.command()(run)
app.command()(demo)


def main() -> None:
    """Console-script entry point."""
    app()
