"""The tamper-evident log on real Postgres: verify passes untouched streams and names an event
changed behind the store's back; bundles verify offline; databases from before the hash chain
migrate and their rows verify as legacy; the CLI's exit codes, run as a process."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import asyncpg
import pytest

from shared.eventstore import ConcurrencyConflictError, NewEvent, PostgresEventStore
from shared.readside.audit import export_bundle, verify_bundle, verify_store, verify_stream
from tests.conftest import StackInfo

pytestmark = pytest.mark.integration

_BEFORE_HASHES = Path(__file__).with_name("schema_before_hashes.sql")


@pytest.fixture
async def database(stack_info: StackInfo) -> AsyncIterator[str]:
    """A database of its own, dropped afterwards: the CLI always uses the schema "agentlog",
    and this test edits rows that other tests must not see."""
    name = f"audit_{uuid4().hex}"
    admin = await asyncpg.connect(stack_info.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield urlunsplit(urlsplit(stack_info.database_url)._replace(path=f"/{name}"))
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _cli(*args: str, database_url: str | None) -> subprocess.CompletedProcess[str]:
    """`python -m shared.cli ARGS` as a user runs it, with or without a database configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLOG_")}
    if database_url is not None:
        env["AGENTLOG_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _tamper(dsn: str, stream_id: str, version: int, old: str, new: str) -> int:
    """Change bytes of one stored event's data, trigger off, as an intruder with DDL rights
    would; returns its position."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE agentlog.events DISABLE TRIGGER events_append_only")
            position: int = await conn.fetchval(
                "UPDATE agentlog.events SET data = replace(data::text, $3, $4)::json"
                " WHERE stream_id = $1 AND version = $2 RETURNING position",
                stream_id,
                version,
                old,
                new,
            )
            await conn.execute("ALTER TABLE agentlog.events ENABLE TRIGGER events_append_only")
        return position
    finally:
        await conn.close()


async def test_verify_names_an_event_changed_in_postgres(database: str, tmp_path: Path) -> None:
    """Untouched streams verify (API and CLI) and export to a bundle that verifies offline;
    after one byte of one stored event changes, verify names that event and exits 1, and a
    one-byte edit of the bundle is caught too."""
    wf = f"wf-audit-{uuid4().hex[:8]}"
    async with PostgresEventStore(database) as store:
        meta = {"actor": "writer", "causation_id": "m-1", "correlation_id": wf}
        await store.append(wf, [NewEvent("WorkflowStarted", {"goal": "ünïcode ✓"})], 0)
        await store.append(wf, [NewEvent("DraftWritten", {"text": "draft one"}, metadata=meta)], 1)
        await store.append(
            wf, [NewEvent("DraftWritten", {"text": "draft two"}), NewEvent("X", {})], 2
        )
        await store.append("wf-other", [NewEvent("WorkflowStarted", {"n": 2**70})], 0)
        assert (await verify_stream(store, wf)).events_checked == 4
        assert (await verify_store(store)).as_dict()["events_checked"] == 5

    ok = _cli("verify", database_url=database)
    assert (ok.returncode, ok.stdout) == (0, "ok: 5 events in 2 workflows\n"), ok.stderr
    bundle = tmp_path / "audit.jsonl"
    exported = _cli("export", "--all", "-o", str(bundle), database_url=database)
    assert exported.returncode == 0, exported.stderr
    offline = _cli("verify", "--file", str(bundle), database_url=None)
    assert (offline.returncode, offline.stdout) == (0, "ok: 5 events in 2 workflows\n")

    position = await _tamper(database, wf, 3, "draft two", "draft twO")
    async with PostgresEventStore(database) as store:
        broken = (await verify_stream(store, wf)).first_broken
        assert broken is not None
        assert (broken.stream_id, broken.version, broken.position) == (wf, 3, position)
        assert "does not match" in broken.reason
        after = [line async for line in export_bundle(store, stream_id=wf)]
    assert verify_bundle(after).first_broken == replace(broken, line=5)
    cli = _cli("verify", wf[:-2], database_url=database)  # a prefix names it
    assert cli.returncode == 1
    assert cli.stdout.startswith(f"broken: workflow {wf}, version 3, position {position}: the hash")

    bundle.write_bytes(bundle.read_bytes().replace(b"draft one", b"draft onE"))
    edited = _cli("verify", "--file", str(bundle), database_url=None)
    assert edited.returncode == 1
    assert edited.stdout.startswith(f"broken: workflow {wf}, version 2, position ")


async def test_concurrent_appenders_chain_from_the_head_they_locked(
    stack_info: StackInfo,
) -> None:
    """Writers racing on one stream (retrying on conflict) and on others leave every chain
    intact: each append links to the head it saw under the lock."""
    schema = f"t_{uuid4().hex}"
    async with PostgresEventStore(stack_info.database_url, schema=schema, pool_max=8) as store:

        async def writer(w: int) -> None:
            for i in range(10):
                await store.append(f"own-{w}", [NewEvent("E", {"i": i})], i)
                while True:
                    try:
                        version = await store.stream_version("shared")
                        await store.append("shared", [NewEvent("E", {"w": w, "i": i})], version)
                        break
                    except ConcurrencyConflictError:
                        continue

        try:
            await asyncio.gather(*(writer(w) for w in range(6)))
            result = await verify_store(store)
            assert (result.ok, result.events_checked, result.streams_checked) == (True, 120, 7)
        finally:
            await _drop(stack_info.database_url, schema)


async def _drop(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def test_rows_from_before_the_hash_chain_migrate_and_verify_as_legacy(
    stack_info: StackInfo,
) -> None:
    """A schema installed by the previous release (no hash columns) migrates at start: its rows
    read with no hash and count as legacy, new appends chain from the zero hash, the stream
    and its bundle verify, and the old append function is gone."""
    dsn, schema = stack_info.database_url, f"t_{uuid4().hex}"
    old_sql = _BEFORE_HASHES.read_text("utf-8").replace("__SCHEMA__", f'"{schema}"')
    conn = await asyncpg.connect(dsn)
    old_append = f'SELECT * FROM "{schema}".append_events($1, $2, NULL, NULL, $3, $4, $5, $6, $7)'
    try:
        await conn.execute(old_sql)
        await conn.execute(
            f'CREATE TABLE "{schema}".store_schema (singleton boolean PRIMARY KEY DEFAULT true,'
            " sql_sha256 text NOT NULL, installed_at timestamptz NOT NULL DEFAULT now());"
            f" INSERT INTO \"{schema}\".store_schema (sql_sha256) VALUES ('{_sha(old_sql)}')"
        )
        for expected, n in ((0, 2), (2, 1)):
            ids = [str(uuid4()) for _ in range(n)]
            await conn.fetch(
                old_append,
                "wf-old",
                expected,
                ["Old"] * n,
                [1] * n,
                ids,
                ['{"legacy":true}'] * n,
                ["{}"] * n,
            )

        async with PostgresEventStore(dsn, schema=schema) as store:
            old = await store.read("wf-old")
            assert [(e.version, e.hash) for e in old] == [(1, None), (2, None), (3, None)]
            legacy = await verify_stream(store, "wf-old")
            assert (legacy.ok, legacy.events_checked, legacy.legacy_events) == (True, 3, 3)
            await store.append("wf-old", [NewEvent("New", {}), NewEvent("New", {})], 3)
            result = await verify_store(store)
            assert (result.ok, result.events_checked, result.legacy_events) == (True, 5, 3)
            lines = [line async for line in export_bundle(store)]
            assert verify_bundle(lines) == result
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await conn.fetch(old_append, "wf-old", 5, ["Old"], [1], ["x"], ["{}"], ["{}"])
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
