"""`agentlog export | verify`: audit bundles and hash-chain checks (shared.readside.audit).

Exit codes as for the workflow commands: 2 for wrong input (no scope or two, a bad time, an
unreadable file), 1 when the operation failed, and for `verify`, 1 when a link is broken.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from shared.cli.stack import load_cli_settings
from shared.cli.workflows import _check_id, _error, _print_json, _resolve, _run, _store
from shared.readside.audit import (
    VerifyResult,
    export_bundle,
    verify_bundle,
    verify_store,
    verify_stream,
)

__all__ = ["export", "verify"]

_WorkflowId = Annotated[
    str | None,
    typer.Argument(help="A workflow id, or any prefix of one that names only one workflow."),
]
_All = Annotated[bool, typer.Option("--all", help="Every workflow, in id order.")]


def _usage(message: str) -> typer.Exit:
    _error(message)
    return typer.Exit(2)


def _since(text: str | None) -> datetime | None:
    """An ISO 8601 time; one without a zone is UTC."""
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise _usage(f"--since {text!r} is not an ISO 8601 time (e.g. 2026-01-31T12:00)") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def export(
    workflow_id: _WorkflowId = None,
    all_streams: _All = False,
    since: Annotated[
        str | None,
        typer.Option(help="Only events recorded at or after this ISO 8601 time (UTC if no zone)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """Write an audit bundle (JSON Lines) of a workflow or all.

    Every event with its position, version, hashes, metadata and provenance; `agentlog verify
    --file` checks it offline. A file is replaced only once the bundle is complete.
    """
    if (workflow_id is None) == (not all_streams):
        raise _usage("name a workflow or give --all (not both)")
    if workflow_id is not None:
        _check_id(workflow_id)
    start = _since(since)
    settings = load_cli_settings()

    async def _export(out: TextIO) -> str:
        async with _store(settings) as store:
            stream_id = None if workflow_id is None else await _resolve(store, workflow_id)
            last = ""
            async for line in export_bundle(store, stream_id=stream_id, since=start):
                out.write(line)
                last = line
        return last

    if output is None:
        _run(_export(sys.stdout))
        return
    counts = json.loads(_to_file(output, _export))
    typer.echo(
        f"exported {counts['events']} events of {counts['streams']} workflows to {output}",
        err=True,
    )


def _to_file(path: Path, export: Callable[[TextIO], Coroutine[Any, Any, str]]) -> str:
    """Export into a temporary file beside ``path``, renamed over it only once complete."""
    try:
        fd, part = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise _usage(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            last = _run(export(out))
        os.replace(part, path)
    except BaseException:
        Path(part).unlink(missing_ok=True)
        raise
    return last


def verify(
    workflow_id: _WorkflowId = None,
    all_streams: _All = False,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Check an exported bundle offline (no database)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check the hash chain, in the database or in a bundle.

    With no argument, every workflow in the database. Exit 1 names the first broken link.
    """
    if sum((workflow_id is not None, all_streams, file is not None)) > 1:
        raise _usage("give one of a workflow, --all or --file")
    if file is not None:
        result = _verify_file(file)
    else:
        if workflow_id is not None:
            _check_id(workflow_id)
        settings = load_cli_settings()

        async def _verify() -> VerifyResult:
            async with _store(settings) as store:
                if workflow_id is None:
                    return await verify_store(store)
                return await verify_stream(store, await _resolve(store, workflow_id))

        result = _run(_verify())
    _report(result, as_json)


def _verify_file(path: Path) -> VerifyResult:
    try:
        with path.open("rb") as lines:
            return verify_bundle(lines)
    except OSError as exc:
        raise _usage(f"cannot read {path}: {exc.strerror or exc}") from None


def _report(result: VerifyResult, as_json: bool) -> None:
    if as_json:
        _print_json(result.as_dict())
    elif result.first_broken is None:
        legacy = (
            f"; {result.legacy_events} legacy events (not chained)" if result.legacy_events else ""
        )
        print(f"ok: {result.events_checked} events in {result.streams_checked} workflows{legacy}")
    else:
        b = result.first_broken
        where = ", ".join(
            f"{name} {value}"
            for name, value in (
                ("workflow", b.stream_id),
                ("version", b.version),
                ("position", b.position),
                ("line", b.line),
            )
            if value is not None
        )
        print(f"broken: {where}: {b.reason}")
    if not result.ok:
        raise typer.Exit(1)
