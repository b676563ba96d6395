"""`agentlog console`: the web console (docs/console.md), and the helpers to configure its users.

The server listens on 127.0.0.1:8780 unless ``AGENTLOG_CONSOLE_HOST``/``_PORT`` say otherwise;
any non-loopback host also needs sign-in configured, or the command exits 2 with one line.
"""

from __future__ import annotations

import json
import signal
import sys
from typing import Annotated

import typer

from shared.auth import CredentialError, Principal, Role
from shared.auth.keys import ensure_principal_key
from shared.cli.stack import load_cli_settings
from shared.cli.workflows import _run, _store
from shared.console.access import ConsoleRole, bind_problem, hash_password
from shared.console.settings import ConsoleSettings, load_console_settings
from shared.settings import Settings, StackNotConfiguredError

__all__ = ["console_app"]

console_app = typer.Typer(
    help="The web console: workflows, approvals, time travel, dead letters.",
    invoke_without_command=True,
    rich_markup_mode=None,
)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@console_app.callback()
def console(
    context: typer.Context,
    port: Annotated[
        int | None, typer.Option(help="Port (default AGENTLOG_CONSOLE_PORT or 8780).")
    ] = None,
) -> None:
    """Serve the web console on loopback (http://127.0.0.1:8780 by default)."""
    if context.invoked_subcommand is not None:
        return
    try:
        console_settings = load_console_settings()
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if port is not None:
        console_settings.port = port
    access = console_settings.access()
    problem = bind_problem(console_settings.host, console_settings.host_configured, access)
    if problem is not None:
        raise _fail(problem)
    settings = load_cli_settings()
    try:
        settings.require_database_url()
        settings.require_kafka_bootstrap()
    except StackNotConfiguredError as exc:
        raise _fail(str(exc)) from None
    # uvicorn stops on SIGINT/SIGTERM, then raises the signal again for the handler it found:
    # a no-op one, so a requested stop ends with exit 0 like the services', not a traceback.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, lambda *_: None)
    _run(_serve(settings, console_settings))


async def _serve(settings: Settings, console_settings: ConsoleSettings) -> None:
    import uvicorn

    from schemas.topics import APPROVALS, CONTROL, GOALS
    from shared.commands import open_store
    from shared.console import KafkaDeadLetters, create_app
    from shared.runtime.wiring import kafka_bus
    from shared.transport import Bus

    def bus_for(principal: str) -> Bus:
        return kafka_bus(
            settings, service="console", topics=[GOALS, CONTROL, APPROVALS], principal=principal
        )

    async with _store(settings):
        pass  # unreachable Postgres: one line naming the address, not uvicorn's traceback
    store = open_store(settings)
    app = create_app(
        store=store,
        bus_for=bus_for,
        dead_letters=KafkaDeadLetters(settings.require_kafka_bootstrap()),
        access=console_settings.access(),
        state_dir=settings.state_dir,
    )
    host, port = console_settings.host, console_settings.port
    where = f"[{host}]" if ":" in host else host
    typer.echo(f"agentlog console on http://{where}:{port}", err=True)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        # Live pages hold server-sent event streams open; do not wait on them to stop.
        timeout_graceful_shutdown=2,
    )
    await uvicorn.Server(config).serve()


def _read_password() -> str:
    if sys.stdin.isatty():
        return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\n")


@console_app.command("hash-password")
def hash_password_command() -> None:
    """Read a password (prompted twice, or one line on stdin) and print its scrypt hash."""
    password = _read_password()
    if len(password) < 8:
        raise _fail("use at least 8 characters")
    typer.echo(hash_password(password))


@console_app.command("add-user")
def add_user(
    name: Annotated[str, typer.Argument(help="The user name (also their key's principal).")],
    role: Annotated[ConsoleRole, typer.Option(help="viewer, approver or operator.")] = (
        ConsoleRole.VIEWER
    ),
) -> None:
    """Create the user's signing key (approvers and operators) and print their
    AGENTLOG_CONSOLE_USERS entry; restart the supervisor so it trusts the new key."""
    password = _read_password()
    if len(password) < 8:
        raise _fail("use at least 8 characters")
    if role is not ConsoleRole.VIEWER:
        settings = Settings()
        folder = settings.auth.keys_folder(settings.state_dir)
        keyring_role = Role.OPERATOR if role is ConsoleRole.OPERATOR else Role.APPROVER
        try:
            created = ensure_principal_key(folder, Principal(name, keyring_role))
        except (OSError, CredentialError) as exc:
            raise _fail(f"cannot write the key in {folder}: {exc}", 1) from None
        said = "created" if created else "kept"
        typer.echo(f"{said} {folder / (name + '.key')} ({keyring_role.value})", err=True)
    entry = {name: {"role": role.value, "password_hash": hash_password(password)}}
    typer.echo(json.dumps(entry))
