"""What `stack up --broker kafka` needs before it starts anything: Java 17+, the jars (or Maven
to fetch them), a valid broker choice; and a broker config that agentlog's clients accept.

Files and tiny scripts in a temp dir only: no JVM, no Maven run, no broker.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.settings import KafkaTuning, Settings
from shared.stack import StackError
from shared.stack.kafka import server_properties
from shared.stack.kafka_jars import (
    KAFKA_POM,
    find_java,
    jar_cache_dir,
    jars_cached,
    kafka_version,
    resolve_jars,
)
from shared.stack.state import BrokerKind, ProcessRecord, StackState


def _fake_java(folder: Path, version: str) -> Path:
    """A `java` that prints the version banner of the given Java release."""
    folder.mkdir(parents=True, exist_ok=True)
    java = folder / "java"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2025-04-15' >&2\n")
    java.chmod(0o755)
    return java


def test_missing_java_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no `java` on PATH and no JAVA_HOME, the error says so and how to get Java 17+."""
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(StackError) as caught:
        find_java()
    message = str(caught.value)
    assert "\n" not in message
    assert "needs Java 17+, but `java` is not on PATH" in message
    assert "apt-get install openjdk-17-jre-headless" in message
    assert "--broker tansu" in message


def test_java_home_without_java_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A JAVA_HOME with no bin/java is reported as such, not as a missing PATH entry."""
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(StackError, match=re.escape(f"JAVA_HOME={tmp_path} has no bin/java")):
        find_java()


@pytest.mark.parametrize("version", ["11.0.2", "1.8.0_402"])
def test_old_java_is_refused_with_its_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: str
) -> None:
    """Java 11 and Java 8 are refused, naming the version found."""
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(_fake_java(tmp_path / "bin", version).parent))
    expected = version.split(".")[0] if not version.startswith("1.") else "8"
    with pytest.raises(StackError, match=f"reports Java {expected}:"):
        find_java()


@pytest.mark.parametrize("version", ["17.0.15", "25"])
def test_java_17_and_newer_are_accepted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: str
) -> None:
    """Java 17 and a later release such as 25 are accepted; the path found is returned."""
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    java = _fake_java(tmp_path / "bin", version)
    assert find_java() == str(java)


def test_missing_maven_without_cached_jars_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With the jars not cached and no `mvn` on PATH, the error names Maven and the cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(StackError) as caught:
        resolve_jars(log=tmp_path / "maven.log")
    message = str(caught.value)
    assert "Maven (`mvn`) is not on PATH" in message
    assert str(jar_cache_dir()) in message
    assert not jars_cached()


def test_cached_jars_need_no_maven(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Once the jar folder is complete, resolving needs no Maven at all."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", "/nonexistent")
    folder = jar_cache_dir()
    folder.mkdir(parents=True)
    (folder / f"kafka_2.13-{kafka_version()}.jar").write_bytes(b"")
    assert resolve_jars(log=tmp_path / "maven.log") == folder


def test_the_jar_cache_is_keyed_by_version_and_pom(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The cache folder names the Kafka version, and another pom gets another folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    other = tmp_path / "pom.xml"
    other.write_text(KAFKA_POM.read_text().replace("<dependencies>", "<dependencies>\n"))
    assert kafka_version().startswith("4.")
    assert jar_cache_dir().name.startswith(f"kafka-{kafka_version()}-")
    assert jar_cache_dir(other) != jar_cache_dir()
    assert jar_cache_dir().parent == tmp_path / "agentlog"


def test_broker_config_accepts_agentlogs_client_timings(tmp_path: Path) -> None:
    """The generated config lets agentlog's default consumer session (2 s) join a group, and
    keeps every internal topic at one replica."""
    config = dict(
        line.split("=", 1) for line in server_properties(9092, 9093, tmp_path).splitlines()
    )
    assert int(config["group.min.session.timeout.ms"]) <= KafkaTuning().session_timeout_ms
    assert config["process.roles"] == "broker,controller"
    assert config["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert config["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert config["log.dirs"] == str(tmp_path)
    replicas = {k: v for k, v in config.items() if k.endswith("replication.factor")}
    assert set(replicas.values()) == {"1"}
    assert len(replicas) == 3


def test_state_records_the_broker_kind() -> None:
    """stack.json names the broker kind; a file from before the choice existed reads as Tansu."""
    state = StackState(
        postgres=ProcessRecord(pid=10, port=5544, started_at=1.5),
        broker=ProcessRecord(pid=11, port=9099, started_at=2.0),
        broker_kind=BrokerKind.KAFKA,
    )
    raw = json.loads(json.dumps(state.to_json()))
    assert raw["broker_kind"] == "kafka"
    assert StackState.from_json(raw) == state
    del raw["broker_kind"]
    assert StackState.from_json(raw).broker_kind is BrokerKind.TANSU
    with pytest.raises(ValueError, match="broker_kind must be one of tansu, kafka"):
        StackState.from_json({**raw, "broker_kind": "redpanda"})


def test_stack_broker_setting_accepts_only_known_brokers(monkeypatch: pytest.MonkeyPatch) -> None:
    """AGENTLOG_STACK_BROKER is tansu by default, takes kafka, and refuses anything else."""
    monkeypatch.delenv("AGENTLOG_STACK_BROKER", raising=False)
    assert Settings().stack_broker == "tansu"
    monkeypatch.setenv("AGENTLOG_STACK_BROKER", "kafka")
    assert Settings().stack_broker == "kafka"
    monkeypatch.setenv("AGENTLOG_STACK_BROKER", "redpanda")
    with pytest.raises(ValidationError, match="'tansu' or 'kafka'"):
        Settings()
