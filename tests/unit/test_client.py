"""``agentlog.Client`` over the in-memory store: the CLI's reads, and refusals raised before
anything is published (Kafka points at a closed port, so a publish would fail differently)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentlog import Client, NotFoundError, RefusedError
from shared.eventstore import InMemoryEventStore
from shared.settings import Settings
from tests.unit.test_readside import load_golden


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    """A client over the golden rollback and fork histories."""
    store = InMemoryEventStore()
    await load_golden(store, "rolled_back", "forked")
    settings = Settings(
        database_url="postgresql://unused@127.0.0.1:1/x", kafka_bootstrap="127.0.0.1:1"
    )
    async with Client(settings, store=store) as opened:
        yield opened


async def test_the_client_reads_what_the_cli_prints(client: Client) -> None:
    """status, state_at, history and diff answer from the same queries as the CLI."""
    status = await client.status("wf-golden-rollback")
    assert (status["status"], status["version"]) == ("completed", 18)
    assert (await client.state_at("wf-golden-rollback", 12))["run"] == 2
    rows = await client.history("wf-golden-rollback", full=True)
    assert [r["version"] for r in rows if r["abandoned"]] == list(range(4, 13))
    assert rows[0]["data"]
    diff = await client.diff("wf-golden-parent", "wf-golden-fork")
    assert (diff.common, diff.changed) == (3, ["command.constraints"])


async def test_unknown_workflows_raise_not_found(client: Client) -> None:
    """Reading a workflow that does not exist is a NotFoundError naming it."""
    for read in (client.status, client.history):
        with pytest.raises(NotFoundError, match="no workflow 'wf-nope'"):
            await read("wf-nope")
    with pytest.raises(NotFoundError, match="no workflow 'wf-nope'"):
        await client.diff("wf-golden-parent", "wf-nope")


async def test_invalid_requests_are_refused_before_publishing(client: Client) -> None:
    """A rollback to an abandoned version, a fork under a taken id and a cancel of a finished
    workflow raise RefusedError with the reason; nothing reaches Kafka."""
    with pytest.raises(RefusedError, match="abandoned branch"):
        await client.rollback("wf-golden-rollback", 5, "redo")
    with pytest.raises(RefusedError, match="already exists"):
        await client.fork("wf-golden-parent", 3, workflow_id="wf-golden-fork")
    with pytest.raises(RefusedError, match="already completed"):
        await client.cancel("wf-golden-parent")
