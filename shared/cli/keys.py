"""`agentlog keys init|show`: the signing keys of services, operators and upstream systems."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shared.auth import DEVELOPMENT_PRINCIPALS, CredentialError, Keyring, ensure_development_keys
from shared.auth.keys import KEYRING_FILE
from shared.settings import Settings

__all__ = ["keys_app"]

keys_app = typer.Typer(
    help="Create and inspect the Ed25519 keys that sign agentlog's messages.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _folder(directory: Path | None) -> Path:
    settings = Settings()
    return directory or settings.auth.keys_folder(settings.state_dir)


@keys_app.command()
def init(
    directory: Annotated[
        Path | None,
        typer.Argument(
            help="Where to write them (default: AGENTLOG_AUTH_KEYS_DIR or the stack's)."
        ),
    ] = None,
) -> None:
    """Create any missing key pair (one per service, `operator`, `upstream`) and the keyring.

    Existing keys are kept. Hand each process only its own `<name>.key`; verifiers need only
    `keyring.json`.
    """
    folder = _folder(directory)
    try:
        created = ensure_development_keys(folder)
    except (OSError, CredentialError) as exc:
        typer.echo(f"error: cannot write keys in {folder}: {exc}", err=True)
        raise typer.Exit(1) from None
    names = ", ".join(created) if created else "none (all present)"
    typer.echo(f"keys in {folder}; created: {names}", err=True)


@keys_app.command()
def show(
    directory: Annotated[Path | None, typer.Argument(help="The keys folder.")] = None,
) -> None:
    """List the principals the keyring trusts, with their roles."""
    folder = _folder(directory)
    try:
        keyring = Keyring.load(folder / KEYRING_FILE)
    except CredentialError as exc:
        typer.echo(f"error: {exc} (create one with `agentlog keys init`)", err=True)
        raise typer.Exit(1) from None
    for principal in DEVELOPMENT_PRINCIPALS:
        trusted = keyring.get(principal.name)
        if trusted is not None:
            typer.echo(f"{principal.name:<11} {trusted.principal.role.value}")
