"""A workflow the five services ran is verifiable: its hash chain holds, an exported bundle
verifies offline, and one changed byte — in Postgres or in the bundle — is named."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from shared.eventstore import RecordedEvent
from shared.eventstore.postgres import PostgresEventStore
from shared.runtime.processes import ServiceProcesses
from tests.conftest import StackInfo
from tests.e2e.conftest import REPO
from tests.e2e.upstream import publish_goal

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _completed(database_url: str, workflow_id: str) -> list[RecordedEvent]:
    async with PostgresEventStore(database_url, pool_max=1) as store:
        async with asyncio.timeout(60):
            while True:
                records = await store.read(workflow_id)
                if records and records[-1].type == "WorkflowCompleted":
                    return records
                await asyncio.sleep(0.2)


async def test_a_finished_workflow_verifies_and_one_changed_byte_is_named(
    services: ServiceProcesses,
    producer: AIOKafkaProducer,
    stack_info: StackInfo,
    service_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """verify passes on the untouched stream and on its exported bundle offline; a one-byte
    edit of the bundle and a one-byte change of a stored event (trigger disabled) are each
    reported at that event."""
    workflow_id = await publish_goal(producer, "Explain how replay rebuilds workflow state")
    records = await _completed(stack_info.database_url, workflow_id)
    assert _cli(service_env, "verify", workflow_id).returncode == 0
    bundle = tmp_path / "audit.jsonl"
    exported = _cli(service_env, "export", workflow_id, "-o", str(bundle))
    assert exported.returncode == 0, exported.stderr
    offline = _cli(
        {"AGENTLOG_DATABASE_URL": "postgresql://nowhere:1/none"}, "verify", "--file", str(bundle)
    )
    assert offline.returncode == 0, offline.stderr

    draft = next(r for r in records if r.type == "DraftWritten")
    text = bundle.read_text()
    at = text.index('"draft":"') + len('"draft":"')
    edited = tmp_path / "edited.jsonl"
    edited.write_text(text[:at] + ("X" if text[at] != "X" else "Y") + text[at + 1 :])
    caught = _cli(service_env, "verify", "--file", str(edited))
    assert caught.returncode == 1
    assert f"version {draft.version}" in caught.stdout + caught.stderr

    conn = await asyncpg.connect(stack_info.database_url)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE agentlog.events DISABLE TRIGGER events_append_only")
            await conn.execute(
                "UPDATE agentlog.events SET data = replace(data::text, 'replay', 'rePlay')::json"
                " WHERE stream_id = $1 AND version = $2",
                workflow_id,
                draft.version,
            )
            await conn.execute("ALTER TABLE agentlog.events ENABLE TRIGGER events_append_only")
    finally:
        await conn.close()
    tampered = _cli(service_env, "verify", workflow_id)
    assert tampered.returncode == 1
    assert f"version {draft.version}" in tampered.stdout + tampered.stderr
