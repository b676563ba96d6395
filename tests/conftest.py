"""Session-wide infrastructure: one embedded stack (or the one named by the environment).

Set AGENTLOG_DATABASE_URL and AGENTLOG_KAFKA_BOOTSTRAP to run the suite against external
Postgres/Kafka; otherwise the session starts the embedded stack in a temp dir and stops it.
Either way the session has development signing keys, and exports ``AGENTLOG_AUTH_KEYS_DIR`` so
every process and client it starts signs and verifies with them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class StackInfo:
    """Where the test session's Postgres and broker listen."""

    database_url: str
    kafka_bootstrap: str
    keys_dir: Path


@pytest.fixture(scope="session", autouse=True)
def _private_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`stack up` records the latest stack in the user's state folder for the CLI; the test
    session's stacks must not replace the developer's own pointer."""
    with _exported("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state"))):
        yield


@pytest.fixture(scope="session")
def stack_info(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """The session's Postgres DSN and Kafka bootstrap servers."""
    from shared.auth import ensure_development_keys

    db = os.environ.get("AGENTLOG_DATABASE_URL")
    kafka = os.environ.get("AGENTLOG_KAFKA_BOOTSTRAP")
    if db and kafka:
        keys = tmp_path_factory.mktemp("keys")
        ensure_development_keys(keys)
        with _exported("AGENTLOG_AUTH_KEYS_DIR", str(keys)):
            yield StackInfo(db, kafka, keys)
        return
    from shared.stack import EmbeddedStack

    stack = EmbeddedStack(tmp_path_factory.mktemp("stack") / ".agentlog")
    info = stack.up()
    keys = stack.state_dir / "keys"
    try:
        with _exported("AGENTLOG_AUTH_KEYS_DIR", str(keys)):
            yield StackInfo(db or info.database_url, kafka or info.kafka_bootstrap, keys)
    finally:
        stack.down()


@contextmanager
def _exported(name: str, value: str) -> Iterator[None]:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous
