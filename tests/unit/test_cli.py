"""The CLI's handling of bad input, missing configuration and unreachable backends.

No backend runs here: unreachable ones are closed or silent local ports, and workflow reads go
to the in-memory event store (the adapter the contract suite holds to Postgres's behaviour).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from schemas.events import DomainEvent, TaskScheduled, WorkflowCancelled, WorkflowStarted
from shared.cli import workflows
from shared.cli.app import app
from shared.eventstore import InMemoryEventStore, NewEvent
from shared.runtime.codec import encode_events
from shared.settings import Settings

runner = CliRunner()

_LONG_ID = "wf-" + "x" * 120  # longer than a terminal line: must never be cut


@pytest.fixture
def no_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AGENTLOG_* variables, no stack in or above the working dir, no pointer to one."""
    for name in list(os.environ):
        if name.startswith("AGENTLOG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word (a wrong service, a hung one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        port: int = sock.getsockname()[1]
        yield port


@pytest.fixture
def signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A signing key for the CLI's publishes, so a Kafka test fails at Kafka, not at signing."""
    monkeypatch.setenv("AGENTLOG_AUTH_SIGNING_KEY", base64.b64encode(os.urandom(32)).decode())


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    assert lines[0].startswith("error: "), output
    return lines[0]


# --- input and settings ------------------------------------------------------------------


def test_too_short_goal_is_refused_with_a_clear_message(no_backend: None) -> None:
    """A goal under three characters is rejected before anything is published."""
    result = runner.invoke(app, ["submit", "hi"])
    assert result.exit_code == 2
    assert "invalid goal" in result.output
    assert "at least 3 characters" in result.output


def test_bad_workflow_id_is_refused(no_backend: None) -> None:
    """A workflow id outside the allowed characters is rejected with the pattern it must match."""
    result = runner.invoke(app, ["submit", "a real goal", "--workflow-id", "bad id!"])
    assert result.exit_code == 2
    assert "workflow_id" in result.output


def test_missing_backend_names_the_fix(no_backend: None) -> None:
    """Without a database configured, status says how to configure one instead of crashing."""
    result = runner.invoke(app, ["status", "wf-1"])
    assert result.exit_code == 2
    assert "AGENTLOG_DATABASE_URL" in result.output
    assert "agentlog stack up" in result.output


def test_missing_backend_says_where_it_looked(no_backend: None, tmp_path: Path) -> None:
    """No stack found: the error names the folders searched and the user-level pointer."""
    line = _one_error_line(runner.invoke(app, ["list"]).output)
    assert f"in {tmp_path} and its parents" in line
    assert str(tmp_path / "xdg" / "agentlog" / "current-stack") in line


@pytest.mark.parametrize("command", ["status", "history", "cancel"])
def test_invalid_workflow_id_is_refused_before_connecting(no_backend: None, command: str) -> None:
    """An id no workflow can have is one line and exit 2, with no backend even configured."""
    result = runner.invoke(app, [command, "bad id!"])
    assert result.exit_code == 2
    assert "invalid workflow id 'bad id!'" in _one_error_line(result.output)


def test_malformed_setting_is_one_line(no_backend: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed AGENTLOG_* variable is named in one line, not a pydantic traceback."""
    monkeypatch.setenv("AGENTLOG_TOPIC_PARTITIONS", "four")
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 2
    assert "AGENTLOG_TOPIC_PARTITIONS" in _one_error_line(result.output)


def test_missing_signing_key_is_one_line(no_backend: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """`submit` without a signing key names the missing key file in one line, exit 2."""
    monkeypatch.setenv("AGENTLOG_KAFKA_BOOTSTRAP", f"127.0.0.1:{_closed_port()}")
    result = runner.invoke(app, ["submit", "explain replay"])
    assert result.exit_code == 2
    assert "signing key" in _one_error_line(result.output)


def test_list_limit_must_be_positive(no_backend: None) -> None:
    """`list --limit 0` is refused as a usage error."""
    result = runner.invoke(app, ["list", "--limit", "0"])
    assert result.exit_code == 2
    assert "--limit" in _one_error_line(result.output)


# --- unreachable backends ----------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [["list"], ["status", "wf-1"], ["history", "wf-1"], ["cancel", "wf-1"]]
)
def test_unreachable_postgres_is_one_line(
    no_backend: None, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """A database URL nothing listens on: one line naming the address and its source, exit 1."""
    port = _closed_port()
    monkeypatch.setenv("AGENTLOG_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{port}/x")
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert _one_error_line(result.output) == (
        f"error: cannot reach Postgres at 127.0.0.1:{port} (AGENTLOG_DATABASE_URL): "
        "connection refused"
    )


def test_silent_postgres_fails_within_the_connect_timeout(
    no_backend: None, monkeypatch: pytest.MonkeyPatch, silent_port: int
) -> None:
    """A database address that never answers fails after the connect timeout, not asyncpg's 60s."""
    monkeypatch.setattr(workflows, "CONNECT_TIMEOUT_S", 1.0)
    monkeypatch.setenv("AGENTLOG_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{silent_port}/x")
    started = time.monotonic()
    result = runner.invoke(app, ["list"])
    assert time.monotonic() - started < 5
    assert result.exit_code == 1
    assert _one_error_line(result.output).endswith("no answer within 1s")


def test_unreachable_kafka_is_one_line(
    no_backend: None, monkeypatch: pytest.MonkeyPatch, signing_key: None
) -> None:
    """`submit` to a bootstrap nothing listens on: one line naming it, exit 1, no traceback."""
    port = _closed_port()
    monkeypatch.setenv("AGENTLOG_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    result = runner.invoke(app, ["submit", "explain replay"])
    assert result.exit_code == 1
    assert _one_error_line(result.output) == (
        f"error: cannot reach Kafka at 127.0.0.1:{port} (AGENTLOG_KAFKA_BOOTSTRAP): "
        "connection refused"
    )


def test_silent_kafka_fails_within_the_connect_timeout(
    no_backend: None, monkeypatch: pytest.MonkeyPatch, silent_port: int, signing_key: None
) -> None:
    """A bootstrap that accepts but never answers as Kafka fails fast and says so."""
    monkeypatch.setattr(workflows, "CONNECT_TIMEOUT_S", 1.0)
    monkeypatch.setenv("AGENTLOG_KAFKA_BOOTSTRAP", f"127.0.0.1:{silent_port}")
    started = time.monotonic()
    result = runner.invoke(app, ["submit", "explain replay"])
    assert time.monotonic() - started < 8
    assert result.exit_code == 1
    assert "does not answer as a Kafka broker" in _one_error_line(result.output)


# --- workflows, read from the in-memory store ----------------------------------------------

_T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(no_backend: None, monkeypatch: pytest.MonkeyPatch) -> InMemoryEventStore:
    """The store the CLI reads, with a running workflow (one open search task) and a cancelled
    one; Kafka points at a closed port, so anything published fails loudly."""
    store = InMemoryEventStore()
    monkeypatch.setenv("AGENTLOG_DATABASE_URL", "postgresql://unused@127.0.0.1:1/x")
    monkeypatch.setenv("AGENTLOG_KAFKA_BOOTSTRAP", f"127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("AGENTLOG_AUTH_SIGNING_KEY", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.setattr(workflows, "open_store", lambda settings: store)
    return store


async def _record(store: InMemoryEventStore, workflow_id: str, *events: DomainEvent) -> None:
    records = encode_events(events, actor="test", causation_id=None)
    await store.append(workflow_id, records, await store.stream_version(workflow_id))


async def _running(store: InMemoryEventStore, workflow_id: str) -> None:
    await _record(
        store,
        workflow_id,
        WorkflowStarted(goal="explain replay", started_at=_T0),
        TaskScheduled(
            task_id="search-1",
            agent="search",
            attempt=1,
            deadline=_T0 + timedelta(seconds=30),
            command_type="agentlog.task.search.v1",
            command={},
        ),
    )


async def _cancelled(store: InMemoryEventStore, workflow_id: str) -> None:
    await _record(
        store,
        workflow_id,
        WorkflowStarted(goal="explain replay", started_at=_T0),
        WorkflowCancelled(reason="test", finished_at=_T0),
    )


def test_status_shows_revision_and_open_tasks_readably(store: InMemoryEventStore) -> None:
    """No draft yet reads "none yet"; each open task is one line with its attempt and due time."""
    asyncio.run(_running(store, "wf-run-1"))
    result = runner.invoke(app, ["status", "wf-run-1"])
    assert result.exit_code == 0, result.output
    due = f"{(_T0 + timedelta(seconds=30)).astimezone():%H:%M:%S}"
    assert "revision: none yet" in result.output
    assert f"  search-1 attempt 1, due {due}" in result.output.splitlines()
    assert "{" not in result.output  # no Python dicts


def test_status_json_has_null_revision_before_the_first_draft(
    store: InMemoryEventStore,
) -> None:
    """`status --json` keeps its keys; `revision` is null, not -1, when there is no draft."""
    asyncio.run(_running(store, "wf-run-1"))
    result = runner.invoke(app, ["status", "wf-run-1", "--json"])
    assert result.exit_code == 0, result.output
    assert '"revision": null' in result.output
    assert '"task_id": "search-1"' in result.output


def test_unique_prefix_names_the_workflow(store: InMemoryEventStore) -> None:
    """status, history and cancel accept any prefix that matches exactly one workflow."""
    asyncio.run(_cancelled(store, "wf-abc123"))
    asyncio.run(_running(store, "wf-xyz789"))
    assert "workflow_id: wf-abc123" in runner.invoke(app, ["status", "wf-ab"]).output
    history = runner.invoke(app, ["history", "wf-ab"])
    assert history.exit_code == 0
    assert "WorkflowCancelled" in history.output


def test_ambiguous_prefix_lists_the_candidates(store: InMemoryEventStore) -> None:
    """A prefix of several workflows is one line naming them, exit 2."""
    asyncio.run(_running(store, "wf-abc1"))
    asyncio.run(_running(store, "wf-abc2"))
    result = runner.invoke(app, ["status", "wf-abc"])
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert "matches several workflows" in line
    assert "wf-abc1" in line
    assert "wf-abc2" in line


def test_cancel_of_unknown_workflow_fails(store: InMemoryEventStore) -> None:
    """Cancelling a workflow the store has never seen is an error, not "cancel requested"."""
    result = runner.invoke(app, ["cancel", "wf-nope"])
    assert result.exit_code == 1
    assert _one_error_line(result.output) == "error: no workflow 'wf-nope'"


def test_cancel_of_finished_workflow_fails(store: InMemoryEventStore) -> None:
    """Cancelling a workflow that already ended says how it ended, exit 1, publishes nothing."""
    asyncio.run(_cancelled(store, "wf-done"))
    result = runner.invoke(app, ["cancel", "wf-done"])
    assert result.exit_code == 1
    assert "already cancelled" in _one_error_line(result.output)


def test_cancel_of_running_workflow_publishes(store: InMemoryEventStore) -> None:
    """A running workflow passes the store checks and goes on to Kafka (here: unreachable)."""
    asyncio.run(_running(store, "wf-run-1"))
    result = runner.invoke(app, ["cancel", "wf-run"])
    assert result.exit_code == 1
    assert "cannot reach Kafka" in _one_error_line(result.output)


def test_list_never_cuts_ids(store: InMemoryEventStore) -> None:
    """Piped (not a terminal), `list` prints plain columns with every id whole."""
    asyncio.run(_running(store, _LONG_ID))
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    assert _LONG_ID in result.output.splitlines()[1].split()


# --- help, version, the stack ------------------------------------------------------------


def test_version_is_printed(no_backend: None) -> None:
    """`agentlog --version` prints the installed version."""
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("agentlog ")


@pytest.mark.parametrize("command", [["submit"], ["status"], ["history"], ["stack", "status"]])
def test_help_has_no_type_placeholders_and_explains_json(command: list[str]) -> None:
    """Flags show no "<bool>" and `--json` says what it does."""
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "<bool>" not in result.output
    json_line = next(line for line in result.output.splitlines() if "--json" in line)
    assert "JSON" in json_line


def test_stack_status_without_a_stack_says_where_it_looked(
    no_backend: None, tmp_path: Path
) -> None:
    """`stack status` with no stack anywhere: exit 1 and the folders it searched."""
    result = runner.invoke(app, ["stack", "status"])
    assert result.exit_code == 1
    assert f"in {tmp_path} and its parents" in result.output


def test_stack_down_without_a_stack_is_harmless(no_backend: None) -> None:
    """`stack down` with nothing running says so and succeeds."""
    result = runner.invoke(app, ["stack", "down"])
    assert result.exit_code == 0
    assert "nothing was running" in result.output


def test_settings_read_the_stack_found_from_a_subdirectory(
    no_backend: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From deep inside a project, the CLI uses the project's stack (and its docs folder)."""
    project = tmp_path / "project"
    (project / ".agentlog").mkdir(parents=True)
    (project / "docs").mkdir()
    (project / ".agentlog" / "stack.json").write_text(
        '{"database_url": "postgresql://p@127.0.0.1:1/agentlog", "kafka_bootstrap": "h:2"}'
    )
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    settings = Settings()
    assert settings.state_dir == project / ".agentlog"
    assert settings.docs_dir == project / "docs"
    assert settings.require_kafka_bootstrap() == "h:2"


# --- time travel: state, rollback, fork, diff, replay, history --json ----------------------


def _golden_store(store: InMemoryEventStore, *names: str) -> InMemoryEventStore:
    from tests.unit.test_readside import load_golden

    asyncio.run(load_golden(store, *names))
    return store


def test_history_json_is_json_lines_with_abandoned_rows(store: InMemoryEventStore) -> None:
    """`history --json` prints one JSON object per line; rows a rollback left are abandoned."""
    _golden_store(store, "rolled_back")
    result = runner.invoke(app, ["history", "wf-golden-rollback", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["version"] for r in rows] == list(range(1, 19))
    assert [r["version"] for r in rows if r["abandoned"]] == list(range(4, 13))
    assert rows[-1]["run"] == 2
    assert "data" not in rows[0]


def test_history_full_adds_data_and_metadata(store: InMemoryEventStore) -> None:
    """`history --json --full` rows carry the payload and causation; the text form shows them."""
    _golden_store(store, "rolled_back")
    result = runner.invoke(app, ["history", "wf-golden-rollback", "--json", "--full"])
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert rows[8]["data"]["to_version"] == 3
    assert rows[8]["causation_id"]
    assert rows[8]["correlation_id"] == "wf-golden-rollback"
    text = runner.invoke(app, ["history", "wf-golden-rollback", "--full"]).output
    assert "causation_id: " in text
    assert '"to_version": 3' in text
    assert "(abandoned)" in text


def test_state_at_prints_the_state_then(store: InMemoryEventStore) -> None:
    """`state --at` shows the run, the abandoned versions and the open task at that version."""
    _golden_store(store, "rolled_back")
    result = runner.invoke(app, ["state", "wf-golden-roll", "--at", "12"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "run: 2" in lines
    assert "abandoned versions: 4, 5, 6, 7, 8" in lines
    assert "  critic-v12 (critic) attempt 1" in lines
    info = json.loads(
        runner.invoke(app, ["state", "wf-golden-rollback", "--at", "3", "--json"]).output
    )
    assert (info["version"], info["drafts"], len(info["passages"])) == (3, [], 3)


def test_state_past_the_head_is_one_line(store: InMemoryEventStore) -> None:
    """A version the workflow has not reached is one line, exit 1."""
    _golden_store(store, "rolled_back")
    result = runner.invoke(app, ["state", "wf-golden-rollback", "--at", "40"])
    assert result.exit_code == 1
    assert _one_error_line(result.output) == (
        "error: workflow wf-golden-rollback has 18 events; no version 40"
    )


@pytest.mark.parametrize(
    ("workflow_id", "to", "says"),
    [
        ("wf-golden-rollback", "18", "is not before the workflow's current version 18"),
        ("wf-golden-rollback", "5", "is on an abandoned branch"),
        ("wf-golden-rollback", "8", "is on an abandoned branch"),
        ("wf-nope", "2", "no workflow 'wf-nope'"),
    ],
)
def test_rollback_to_an_invalid_target_is_refused_before_publishing(
    store: InMemoryEventStore, workflow_id: str, to: str, says: str
) -> None:
    """The head, an abandoned event (the first run's end among them) or an unknown workflow:
    one line, exit 1, and Kafka (a closed port here) is never tried."""
    _golden_store(store, "rolled_back")
    result = runner.invoke(app, ["rollback", workflow_id, "--to", to, "--reason", "redo"])
    assert result.exit_code == 1
    line = _one_error_line(result.output)
    assert says in line
    assert "Kafka" not in line


def test_rollback_to_a_valid_target_goes_on_to_kafka(store: InMemoryEventStore) -> None:
    """An effective, non-terminal target passes the store checks and is published (here:
    Kafka unreachable, one line)."""
    _golden_store(store, "rolled_back")
    result = runner.invoke(app, ["rollback", "wf-golden-rollback", "--to", "15", "--reason", "x"])
    assert result.exit_code == 1
    assert "cannot reach Kafka" in _one_error_line(result.output)


def test_rollback_needs_a_reason_and_a_positive_version(no_backend: None) -> None:
    """No --reason is a usage error; --to 0 is refused naming the field, before connecting."""
    assert runner.invoke(app, ["rollback", "wf-1", "--to", "3"]).exit_code == 2
    result = runner.invoke(app, ["rollback", "wf-1", "--to", "0", "--reason", "x"])
    assert result.exit_code == 2
    assert "to_version" in _one_error_line(result.output)


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--workflow-id", "wf-golden-fork"], 1, "'wf-golden-fork' already exists"),
        (["-c", "max word: 50"], 2, "known forms"),
        (["--max-revisions", "11"], 2, "max_revisions"),
    ],
)
def test_fork_refusals_are_one_line(
    store: InMemoryEventStore, args: list[str], code: int, says: str
) -> None:
    """A taken id, an unknown constraint or an out-of-range limit: one line, nothing sent."""
    _golden_store(store, "forked")
    result = runner.invoke(app, ["fork", "wf-golden-parent", "--at", "3", *args])
    assert result.exit_code == code
    assert says in _one_error_line(result.output)


def test_fork_at_an_end_of_run_is_refused(store: InMemoryEventStore) -> None:
    """Forking at the event that finished the parent is refused with the reason."""
    _golden_store(store, "forked")
    result = runner.invoke(app, ["fork", "wf-golden-parent", "--at", "12"])
    assert result.exit_code == 1
    assert _one_error_line(result.output).startswith("error: cannot fork wf-golden-parent:")


def test_diff_names_the_first_divergence(store: InMemoryEventStore) -> None:
    """`diff` says how many steps two workflows share and where they part; --json has it all."""
    _golden_store(store, "forked")
    text = runner.invoke(app, ["diff", "wf-golden-parent", "wf-golden-fork"])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[0] == "wf-golden-parent and wf-golden-fork share 3 steps, then part at step 4:"
    assert "  differs in: command.constraints" in lines
    assert "  wf-golden-fork: max words: 80" in lines
    data = json.loads(
        runner.invoke(app, ["diff", "wf-golden-parent", "wf-golden-fork", "--json"]).output
    )
    assert (data["diverged"], data["common"], data["changed"]) == (
        True,
        3,
        ["command.constraints"],
    )
    assert data["b"]["type"] == "TaskScheduled"


def test_replay_of_the_golden_histories_finds_no_drift(store: InMemoryEventStore) -> None:
    """`replay --all` replays every stream through today's code: all agree, exit 0."""
    _golden_store(store, "rolled_back", "forked")
    result = runner.invoke(app, ["replay", "--all"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "replayed 4 workflow(s): 0 drifted"


def test_replay_names_the_first_drifting_event(store: InMemoryEventStore) -> None:
    """A recorded decision today's code would not make (an edited deadline) is drift: exit 1,
    naming the workflow and the version, in text and in JSON Lines."""
    from tests.unit.test_readside import GOLDEN

    lines = (GOLDEN / "rolled_back.jsonl").read_text().splitlines()
    for raw in lines:
        line = json.loads(raw)
        if line["version"] == 4:
            line["data"]["deadline"] = "2030-01-01T00:00:00Z"
        event = NewEvent(
            line["type"], line["data"], line["schema_version"], metadata=line["metadata"]
        )
        asyncio.run(store.append(line["stream_id"], [event], line["version"] - 1))
    _golden_store(store, "forked")
    result = runner.invoke(app, ["replay", "wf-golden-rollback", "wf-golden-parent"])
    assert result.exit_code == 1
    drift = "DRIFT  wf-golden-rollback: today's code decides otherwise at version 4"
    assert drift in result.output
    assert "ok     wf-golden-parent (12 events)" in result.output
    rows = [
        json.loads(r)
        for r in runner.invoke(app, ["replay", "wf-golden-rollback", "--json"]).output.splitlines()
    ]
    assert rows[0]["drift"]["version"] == 4


def test_replay_needs_workflows_or_all(no_backend: None) -> None:
    """Neither ids nor --all (or both) is a usage error in one line."""
    result = runner.invoke(app, ["replay"])
    assert result.exit_code == 2
    assert "--all" in _one_error_line(result.output)


@pytest.mark.parametrize("command", ["state", "rollback", "fork", "diff", "replay"])
def test_time_travel_help_explains_json(command: str) -> None:
    """Each time-travel command documents --json without type placeholders."""
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "<bool>" not in result.output
    json_line = next(line for line in result.output.splitlines() if "--json" in line)
    assert "JSON" in json_line
