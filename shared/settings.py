"""Runtime settings, read from the environment (prefix ``AGENTLOG_``).

Every process reads the same two connection variables, so pointing agentlog at an external
Postgres or Kafka is a matter of exporting ``AGENTLOG_DATABASE_URL`` and
``AGENTLOG_KAFKA_BOOTSTRAP``. When they are unset, the embedded stack's state file
``stack.json`` (written by ``agentlog stack up``) supplies them. The stack's state dir is found
like git finds a repository: ``AGENTLOG_STATE_DIR`` if set, else the nearest ``.agentlog/`` with
a ``stack.json`` in the working directory or a parent, else the one the last ``agentlog stack up``
named in ``${XDG_STATE_HOME:-~/.local/state}/agentlog/current-stack``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.auth.settings import AuthSettings

__all__ = [
    "KafkaTuning",
    "Settings",
    "StackNotConfiguredError",
    "clear_stack_pointer",
    "find_state_dir",
    "load_settings",
    "stack_pointer_file",
    "write_stack_pointer",
]

STATE_DIR_NAME = ".agentlog"
STACK_FILE_NAME = "stack.json"


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
    # Handled offsets are committed together at most this often (0: after every fetch). A
    # crash redelivers at most this much, which consumers dedupe by ce_id.
    commit_interval_ms: int = 100
    # How often each process checks that the broker still has its topics and committed
    # offsets (a restarted in-memory broker has neither; see shared/transport/broker_watch.py).
    broker_check_s: float = 2.0


class Settings(BaseSettings):
    """Process-wide settings for services, the CLI and tests."""

    model_config = SettingsConfigDict(env_prefix="AGENTLOG_", extra="ignore")

    database_url: str | None = None
    kafka_bootstrap: str | None = None
    state_dir: Path = Field(default_factory=lambda: find_state_dir() or Path.cwd() / STATE_DIR_NAME)
    # The broker `agentlog stack up` starts: Tansu (in memory) or Apache Kafka (needs Java 17+).
    stack_broker: Literal["tansu", "kafka"] = "tansu"
    kafka: KafkaTuning = Field(default_factory=KafkaTuning)
    topic_partitions: int = 4
    # The largest record agentlog produces or accepts (key + value + headers). A bigger one is
    # refused at produce and dead-lettered (reason ``oversized``, payload cut) at consume.
    # Keep it at or below the broker's ``message.max.bytes`` (Kafka's default is ~1 MB).
    max_record_bytes: int = Field(default=1_000_000, ge=10_000)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    # Search corpus; re-indexed when any file in it changes.
    # Default: the docs/ folder of the stack's project (next to its .agentlog/), else ./docs.
    docs_dir: Path = Field(default_factory=lambda data: _default_docs_dir(data.get("state_dir")))
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
    # A fallback model a task moves to after its retries (same provider kinds as above).
    llm_fallback_provider: str | None = None
    llm_fallback_model: str | None = None
    # USD per million tokens, input and output, by model: '{"gpt-4o-mini": [0.15, 0.6]}'.
    llm_prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    # Budgets: the operator's defaults for every workflow, and the most a goal may ask for
    # (unset: unlimited). Frozen in each workflow's policy when it starts.
    budget_max_steps: int | None = None
    budget_max_tokens: int | None = None
    budget_max_usd: float | None = None
    budget_max_seconds: float | None = None
    budget_ceiling_steps: int | None = None
    budget_ceiling_tokens: int | None = None
    budget_ceiling_usd: float | None = None
    budget_ceiling_seconds: float | None = None
    # Step kinds that wait for a human (search, write, critique, summarize, deliver).
    approval_steps: list[str] = Field(default_factory=list)
    approval_timeout_s: float = 3600.0
    service_name: str = "agentlog"
    # Where spans go: a comma-separated list of none | console | otlp | file (off by default).
    # otlp sends to OTEL_EXPORTER_OTLP_ENDPOINT; file writes <state_dir>/traces/<service>.jsonl.
    otel_exporter: str = "none"

    @field_validator("otel_exporter")
    @classmethod
    def _known_exporters(cls, value: str) -> str:
        names = {name.strip().lower() for name in value.split(",") if name.strip()}
        unknown = sorted(names - {"none", "console", "otlp", "file"})
        if unknown:
            raise ValueError(f"unknown trace exporter(s) {unknown}: use none, console, otlp, file")
        return value

    def require_database_url(self) -> str:
        """The Postgres DSN, from the environment or the embedded stack's state file."""
        url = self.database_url or _stack_value(self.state_dir, "database_url")
        if not url:
            raise StackNotConfiguredError(
                "no database: set AGENTLOG_DATABASE_URL or run `agentlog stack up`"
                f" ({self.where_looked()})"
            )
        return url

    def require_kafka_bootstrap(self) -> str:
        """The Kafka bootstrap servers, from the environment or the embedded stack's state."""
        servers = self.kafka_bootstrap or _stack_value(self.state_dir, "kafka_bootstrap")
        if not servers:
            raise StackNotConfiguredError(
                "no Kafka: set AGENTLOG_KAFKA_BOOTSTRAP or run `agentlog stack up`"
                f" ({self.where_looked()})"
            )
        return servers

    def where_looked(self) -> str:
        """Where the stack's state file was looked for, for "no stack" messages."""
        if "state_dir" in self.model_fields_set:
            return f"no running stack in the state dir {self.state_dir}"
        return f"no running stack found: {_search_description()}"


def stack_pointer_file() -> Path | None:
    """The user-level file naming the state dir of the last ``agentlog stack up``."""
    base = os.environ.get("XDG_STATE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".local" / "state")
        except RuntimeError:  # no home directory (a bare container): no pointer at all
            return None
    return Path(base) / "agentlog" / "current-stack"


def _read_stack_pointer() -> Path | None:
    pointer = stack_pointer_file()
    try:
        text = pointer.read_text().strip() if pointer else ""
    except OSError:
        return None
    return Path(text) if text else None


def write_stack_pointer(state_dir: Path) -> None:
    """Remember ``state_dir`` as the current stack (best effort: it is only a convenience)."""
    pointer = stack_pointer_file()
    if pointer is None:
        return
    try:
        pointer.parent.mkdir(parents=True, exist_ok=True)
        tmp = pointer.with_name(f".{pointer.name}.{os.getpid()}.tmp")
        tmp.write_text(f"{state_dir.absolute()}\n")
        tmp.replace(pointer)
    except OSError:
        pass


def clear_stack_pointer(state_dir: Path) -> None:
    """Forget the pointer if it names ``state_dir`` (another stack's pointer is kept)."""
    pointed = _read_stack_pointer()
    pointer = stack_pointer_file()
    if pointer is not None and pointed is not None and pointed == state_dir.absolute():
        pointer.unlink(missing_ok=True)


def find_state_dir(start: Path | None = None, *, use_pointer: bool = True) -> Path | None:
    """The state dir of a stack that was started: the nearest ``.agentlog/stack.json`` at or
    above ``start`` (default: the working directory), else the user-level pointer's."""
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        if (folder / STATE_DIR_NAME / STACK_FILE_NAME).is_file():
            return folder / STATE_DIR_NAME
    pointed = _read_stack_pointer() if use_pointer else None
    if pointed is not None and (pointed / STACK_FILE_NAME).is_file():
        return pointed
    return None


def _search_description() -> str:
    pointer = stack_pointer_file()
    where = f"looked for {STATE_DIR_NAME}/{STACK_FILE_NAME} in {Path.cwd()} and its parents"
    return f"{where}, then for the last `agentlog stack up` in {pointer}" if pointer else where


def _default_docs_dir(state_dir: Any) -> Path:
    if isinstance(state_dir, Path) and (state_dir.parent / "docs").is_dir():
        return state_dir.parent / "docs"
    return Path.cwd() / "docs"


def _stack_value(state_dir: Path, key: str) -> str | None:
    state_file = state_dir / STACK_FILE_NAME
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
