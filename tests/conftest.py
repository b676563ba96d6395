"""Session-wide infrastructure: one embedded stack (or the one named by the environment).

Set AGENTLOG_DATABASE_URL and AGENTLOG_KAFKA_BOOTSTRAP to run the suite against external
Postgres/Kafka; otherwise the session starts the embedded stack in a temp dir and stops it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class StackInfo:
    """Where the test session's Postgres and broker listen."""

    database_url: str
    kafka_bootstrap: str


@pytest.fixture(scope="session")
def stack_info(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """The session's Postgres DSN and Kafka bootstrap servers."""
    db = os.environ.get("AGENTLOG_DATABASE_URL")
    kafka = os.environ.get("AGENTLOG_KAFKA_BOOTSTRAP")
    if db and kafka:
        yield StackInfo(db, kafka)
        return
    from shared.stack import EmbeddedStack

    stack = EmbeddedStack(tmp_path_factory.mktemp("stack") / ".agentlog")
    info = stack.up()
    try:
        yield StackInfo(db or info.database_url, kafka or info.kafka_bootstrap)
    finally:
        stack.down()
