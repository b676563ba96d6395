"""docker-compose.yml and deploy/ agree with the code (Docker itself is not run here)."""

from __future__ import annotations

import base64
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from shared.auth import AuthSettings
from shared.settings import KafkaTuning, Settings
from shared.stack.kafka import server_properties
from shared.stack.kafka_jars import kafka_version
from shared.telemetry.logs import log_formatter
from shared.telemetry.metrics_settings import MetricsSettings

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed; it is a dev dependency")

ROOT = Path(__file__).resolve().parents[2]
AGENTLOG_SERVICES = ("supervisor", "search", "writer", "critic", "summarizer")
INFRA_SERVICES = ("kafka", "postgres", "otel-collector", "jaeger")
# Read by configure_logging straight from the environment, before any settings are loaded.
_LOGGING_VARIABLES = frozenset({"AGENTLOG_LOG_FORMAT", "AGENTLOG_LOG_LEVEL"})
# Compose's ${NAME:-default} interpolation, resolved to the default as on a bare host.
_INTERPOLATION = re.compile(r"\$\{(\w+):-([^}]*)\}")


def _load_yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{path} is not a YAML mapping"
    return document


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The parsed docker-compose.yml (anchors and merge keys resolved)."""
    return _load_yaml(ROOT / "docker-compose.yml")


def _services(compose: dict[str, Any]) -> dict[str, Any]:
    services = compose["services"]
    assert isinstance(services, dict)
    return services


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {
        name: _INTERPOLATION.sub(lambda match: match.group(2), str(value))
        for name, value in service.get("environment", {}).items()
    }


def test_every_service_is_defined(compose: dict[str, Any]) -> None:
    """Compose defines the infrastructure and all five agentlog services."""
    assert set(AGENTLOG_SERVICES + INFRA_SERVICES) <= set(_services(compose))


@pytest.mark.parametrize("name", AGENTLOG_SERVICES)
def test_service_runs_its_command_from_the_shared_image(compose: dict[str, Any], name: str) -> None:
    """Each agentlog service runs `agentlog run <name>` in the image built by deploy/Dockerfile."""
    service = _services(compose)[name]
    assert service["command"] == ["agentlog", "run", name]
    assert service["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
    assert service["image"] == "agentlog:latest"


@pytest.mark.parametrize("name", AGENTLOG_SERVICES)
def test_service_env_names_are_settings_fields(compose: dict[str, Any], name: str) -> None:
    """Every AGENTLOG_* variable a service gets names a field shared/settings.py reads."""
    known = {f"AGENTLOG_{field.upper()}" for field in Settings.model_fields}
    known |= {f"AGENTLOG_KAFKA_{field.upper()}" for field in KafkaTuning.model_fields}
    known |= {f"AGENTLOG_AUTH_{field.upper()}" for field in AuthSettings.model_fields}
    known |= {f"AGENTLOG_METRICS_{field.upper()}" for field in MetricsSettings.model_fields}
    known |= _LOGGING_VARIABLES
    names = {key for key in _env(_services(compose)[name]) if key.startswith("AGENTLOG_")}
    assert names - known == set(), f"{name} sets variables Settings never reads"


@pytest.mark.parametrize("name", AGENTLOG_SERVICES)
def test_settings_read_the_service_env(
    compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings built from a service's environment carries each value compose sets."""
    env = _env(_services(compose)[name])
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    for key, value in env.items():
        if not key.startswith("AGENTLOG_"):
            continue
        field = key.removeprefix("AGENTLOG_").lower()
        if field in Settings.model_fields:
            assert str(getattr(settings, field)) == value, key
        elif field.startswith("auth_"):
            assert str(getattr(settings.auth, field.removeprefix("auth_"))) == value, key
        elif field.startswith("metrics_"):
            metrics = MetricsSettings()
            assert str(getattr(metrics, field.removeprefix("metrics_"))) == value, key
        elif key == "AGENTLOG_LOG_FORMAT":
            assert log_formatter(name, value) is not None, "compose asks for JSON lines"
        else:
            assert str(getattr(settings.kafka, field.removeprefix("kafka_"))) == value, key


@pytest.mark.parametrize("name", AGENTLOG_SERVICES)
def test_service_env_points_at_the_stack(compose: dict[str, Any], name: str) -> None:
    """Services reach compose's Postgres and Kafka and export OTLP to the collector."""
    services = _services(compose)
    env = _env(services[name])
    postgres = _env(services["postgres"])
    url = urlsplit(env["AGENTLOG_DATABASE_URL"])
    assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432)
    assert (url.username, url.password, url.path) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        "/" + postgres["POSTGRES_DB"],
    )
    advertised = _env(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    assert f"PLAINTEXT://{env['AGENTLOG_KAFKA_BOOTSTRAP']}" in advertised.split(",")
    # Unset: on a broker with producer ids the bus long-polls by itself (docs/operations.md).
    assert "AGENTLOG_KAFKA_FETCH_MAX_WAIT_MS" not in env
    assert env["AGENTLOG_OTEL_EXPORTER"] == "otlp"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317"
    assert env["AGENTLOG_SERVICE_NAME"] == name


@pytest.mark.parametrize("name", AGENTLOG_SERVICES)
def test_service_waits_for_healthy_backends(compose: dict[str, Any], name: str) -> None:
    """Services start after Kafka and Postgres pass their healthchecks."""
    services = _services(compose)
    depends_on = services[name]["depends_on"]
    for backend in ("kafka", "postgres"):
        assert depends_on[backend]["condition"] == "service_healthy"
        assert services[backend]["healthcheck"]["test"]
    assert "otel-collector" in depends_on


def test_kafka_runs_in_kraft_mode(compose: dict[str, Any]) -> None:
    """Kafka is apache/kafka as combined broker+controller, with no ZooKeeper anywhere."""
    services = _services(compose)
    kafka = services["kafka"]
    env = _env(kafka)
    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert "CONTROLLER" in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16
    assert not any("ZOOKEEPER" in key for key in env)
    assert not any("zookeeper" in name for name in services)


def test_compose_runs_the_kafka_the_suite_proves(compose: dict[str, Any]) -> None:
    """Compose's Kafka is the version and has the group settings of the embedded Kafka that
    the end-to-end and chaos suites run on, and the services keep the tested client timings."""
    services = _services(compose)
    kafka = services["kafka"]
    assert kafka["image"] == f"apache/kafka:{kafka_version()}"
    tested = dict(
        line.split("=", 1) for line in server_properties(9092, 9093, Path("/data")).splitlines()
    )
    env = _env(kafka)
    for key in (
        "group.min.session.timeout.ms",
        "group.initial.rebalance.delay.ms",
        "num.partitions",
        "offsets.topic.replication.factor",
    ):
        assert str(env["KAFKA_" + key.upper().replace(".", "_")]) == tested[key], key
    supervisor = _env(services["supervisor"])
    for timing in ("SESSION_TIMEOUT_MS", "HEARTBEAT_INTERVAL_MS", "REBALANCE_TIMEOUT_MS"):
        assert f"AGENTLOG_KAFKA_{timing}" not in supervisor, "keep the tested default"
    assert KafkaTuning().session_timeout_ms >= int(env["KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS"])


def test_tracing_goes_through_the_collector_to_jaeger(compose: dict[str, Any]) -> None:
    """The collector mounts deploy/otel-collector.yaml, whose traces pipeline exports to Jaeger."""
    services = _services(compose)
    assert services["postgres"]["image"] == "postgres:16"
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector-contrib")
    assert services["jaeger"]["image"].startswith("jaegertracing/all-in-one")
    assert _env(services["jaeger"])["COLLECTOR_OTLP_ENABLED"] == "true"
    mount = "./deploy/otel-collector.yaml:/etc/otelcol-contrib/config.yaml:ro"
    assert mount in services["otel-collector"]["volumes"]

    config = _load_yaml(ROOT / "deploy" / "otel-collector.yaml")
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    traces = config["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    endpoints = [config["exporters"][exporter]["endpoint"] for exporter in traces["exporters"]]
    assert endpoints == ["jaeger:4317"]


def test_dockerfile_installs_the_package_as_a_non_root_user() -> None:
    """deploy/Dockerfile is python:3.11-slim, pip-installs every package, and drops root."""
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\s*$", dockerfile, re.MULTILINE)
    assert "pip install ." in dockerfile
    # compose exports to the collector's gRPC port, so the image must carry the gRPC exporter.
    assert "opentelemetry-exporter-otlp-proto-grpc" in dockerfile
    assert "opentelemetry-exporter-otlp-proto-http" not in dockerfile
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users, "no USER instruction"
    assert users[-1].split(":")[0] not in {"root", "0"}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert re.search(rf"^COPY {package} ", dockerfile, re.MULTILINE), package
