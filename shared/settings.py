"""Runtime settings, read from the environment (prefix ``AGENTLOG_``).

Every process reads the same two connection variables, so pointing agentlog at an external
Postgres or Kafka is a matter of exporting ``AGENTLOG_DATABASE_URL`` and
``AGENTLOG_KAFKA_BOOTSTRAP``. When they are unset, the embedded stack's state file in
``.agentlog/`` (written by ``agentlog stack up``) supplies them.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["KafkaTuning", "Settings", "StackNotConfiguredError", "load_settings"]

STATE_DIR_NAME = ".agentlog"


class StackNotConfiguredError(RuntimeError):
    """Raised when neither the environment nor a running embedded stack names a backend."""


class KafkaTuning(BaseSettings):
    """Client timings; defaults suit the embedded broker (see docs/operations.md)."""

    model_config = SettingsConfigDict(env_prefix="AGENTLOG_KAFKA_", extra="ignore")

    session_timeout_ms: int = 2000
    heartbeat_interval_ms: int = 200
    rebalance_timeout_ms: int = 2000
    fetch_max_wait_ms: int = 10
    linger_ms: int = 0
    max_batch_size: int = 1_048_576
    request_timeout_ms: int = 15_000
    commit_timeout_s: float = 10.0


class Settings(BaseSettings):
    """Process-wide settings for services, the CLI and tests."""

    model_config = SettingsConfigDict(env_prefix="AGENTLOG_", extra="ignore")

    database_url: str | None = None
    kafka_bootstrap: str | None = None
    state_dir: Path = Field(default_factory=lambda: Path.cwd() / STATE_DIR_NAME)
    kafka: KafkaTuning = Field(default_factory=KafkaTuning)
    topic_partitions: int = 4
    # Search corpus; re-indexed when any file in it changes.
    docs_dir: Path = Field(default_factory=lambda: Path.cwd() / "docs")
    # Workflow policy knobs (passed into the pure domain as a WorkflowPolicy).
    max_revisions: int = 3
    max_attempts: int = 3
    task_timeout_s: float = 30.0
    memory_limit_chars: int = 6000
    manifest_budget_chars: int = 2400
    # LLM provider: "offline" (default, deterministic) or "openai" (any compatible endpoint).
    llm_provider: str = "offline"
    llm_model: str = "gpt-4o-mini"
    llm_base_url: str | None = None
    service_name: str = "agentlog"
    otel_exporter: str = "none"  # none | console | otlp

    def require_database_url(self) -> str:
        """The Postgres DSN, from the environment or the embedded stack's state file."""
        url = self.database_url or _stack_value(self.state_dir, "database_url")
        if not url:
            raise StackNotConfiguredError(
                "no database: set AGENTLOG_DATABASE_URL or run `agentlog stack up`"
            )
        return url

    def require_kafka_bootstrap(self) -> str:
        """The Kafka bootstrap servers, from the environment or the embedded stack's state."""
        servers = self.kafka_bootstrap or _stack_value(self.state_dir, "kafka_bootstrap")
        if not servers:
            raise StackNotConfiguredError(
                "no Kafka: set AGENTLOG_KAFKA_BOOTSTRAP or run `agentlog stack up`"
            )
        return servers


def _stack_value(state_dir: Path, key: str) -> str | None:
    state_file = state_dir / "stack.json"
    if not state_file.is_file():
        return None
    try:
        value = json.loads(state_file.read_text()).get(key)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, str) else None


def load_settings() -> Settings:
    """Read settings from the environment; one call per composition root."""
    return Settings()
