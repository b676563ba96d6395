"""Session-wide infrastructure: one embedded stack (or the one named by the environment).

Set AGENTLOG_DATABASE_URL and AGENTLOG_KAFKA_BOOTSTRAP to run the suite against external
Postgres/Kafka; otherwise the session starts the embedded stack in a temp dir and stops it.
Suites that run on both brokers also get ``kafka_stack_info``: a second embedded stack whose
broker is Apache Kafka, started once per session on first use (skipped, saying why, where Java
or Maven is missing).
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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module that sets ``BROKERS = ("tansu", "kafka")`` runs all its tests once per broker,
    its module-scoped fixtures (a fleet of services, say) once per broker too."""
    brokers = getattr(metafunc.module, "BROKERS", None)
    if brokers and "broker" in metafunc.fixturenames:
        metafunc.parametrize("broker", brokers, indirect=True, scope="module")


@pytest.fixture(scope="module")
def broker(request: pytest.FixtureRequest) -> str:
    """The broker this module's tests run on: Tansu unless the module names both."""
    return str(getattr(request, "param", "tansu"))


@pytest.fixture(scope="module")
def stack_info(broker: str, request: pytest.FixtureRequest) -> StackInfo:
    """The Postgres DSN and Kafka bootstrap servers of the stack for this module's broker."""
    name = "kafka_stack_info" if broker == "kafka" else "session_stack_info"
    info: StackInfo = request.getfixturevalue(name)
    return info


@pytest.fixture(scope="session")
def session_stack_info(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """The session's embedded stack (Tansu), or the external one the environment names."""
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
    try:
        # Inside the try: an up that fails halfway leaves processes only down() stops.
        info = stack.up()
        keys = stack.state_dir / "keys"
        with _exported("AGENTLOG_AUTH_KEYS_DIR", str(keys)):
            yield StackInfo(db or info.database_url, kafka or info.kafka_bootstrap, keys)
    finally:
        stack.down()


@pytest.fixture(scope="session")
def kafka_stack_info(
    session_stack_info: StackInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackInfo]:
    """A session stack whose broker is Apache Kafka; it trusts the same keys as ``stack_info``."""
    from tests.kafka_available import KAFKA_MISSING

    if KAFKA_MISSING is not None:
        pytest.skip(f"no Apache Kafka here: {KAFKA_MISSING}")
    from shared.stack import EmbeddedStack

    stack = EmbeddedStack(tmp_path_factory.mktemp("kafka-stack") / ".agentlog", broker="kafka")
    try:
        info = stack.up()
        # Every process and client signs with the session's keys, whichever broker it uses.
        yield StackInfo(info.database_url, info.kafka_bootstrap, session_stack_info.keys_dir)
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
