"""Secrets stay out of logs, spans and recorded failures, whatever a dependency's errors say."""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from schemas.events import WorkflowFailed, WorkflowPolicy
from schemas.messages import (
    DraftResult,
    GoalSubmitted,
    Passage,
    Provenance,
    SearchResult,
    TaskCommand,
    TaskResult,
    WriteTask,
)
from schemas.messages import TaskFailure as TaskFailureMessage
from schemas.topics import RESULTS, task_topic
from shared.agents.writer import write_draft
from shared.domain import GoalReceived, ResultReceived, decide, replay
from shared.llm.openai_compat import OpenAICompatibleModel, retry_after_seconds
from shared.runtime.clock import SystemClock
from shared.runtime.redaction import (
    REDACTOR,
    RedactingFilter,
    Redactor,
    redact,
    register_secret,
    secrets_from_environment,
    url_password_forms,
)
from shared.runtime.worker import TaskWorker
from shared.telemetry import RedactingSpanExporter
from shared.transport import Delivery
from shared.transport.memory import InMemoryBus
from tests.contracts.echoing_provider import EchoingProvider
from tests.unit._agent_samples import write_task

REPO = Path(__file__).resolve().parents[2]


def _key() -> str:
    return f"sk-unit-{secrets.token_hex(16)}"


def _record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("t", logging.ERROR, __file__, 1, message, args, exc_info)


def _formatted(record: logging.LogRecord, redactor: Redactor) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(redactor))
    handler.handle(record)
    return stream.getvalue()


def _raised(message: str) -> BaseException:
    try:
        try:
            raise ValueError(message)
        except ValueError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as exc:
        return exc


# --- the redactor ---------------------------------------------------------------------------


def test_registered_secrets_are_replaced_everywhere_in_a_text() -> None:
    """Each occurrence of a registered secret becomes ***; other text is untouched."""
    redactor = Redactor()
    key = _key()
    redactor.register_secret(key)
    assert redactor.redact(f"a {key} b {key}") == "a *** b ***"
    assert redactor.redact("nothing secret") == "nothing secret"
    assert key not in repr(redactor)


def test_short_and_blank_values_are_ignored() -> None:
    """Values under six characters are not registered: they would mangle ordinary text."""
    redactor = Redactor()
    for value in ("", "   ", "abc", "true1", None):
        redactor.register_secret(value)
    assert len(redactor) == 0
    assert redactor.redact("abc true1") == "abc true1"


def test_a_secret_containing_another_is_replaced_whole() -> None:
    """The longest match wins, so no tail of a longer secret survives."""
    redactor = Redactor()
    redactor.register_secrets(["secret-123", "secret-123-and-more"])
    assert redactor.redact("x secret-123-and-more y") == "x *** y"


def test_url_passwords_are_registered_in_every_form() -> None:
    """A DSN password counts as written, decoded and re-encoded."""
    url = "postgresql://app:p%40ss%20w%2Frd!@db.example:5432/agentlog"
    forms = url_password_forms(url)
    assert set(forms) == {"p%40ss%20w%2Frd!", "p@ss w/rd!", "p%40ss%20w%2Frd%21"}
    redactor = Redactor()
    redactor.register_secrets(forms)
    assert redactor.redact(url) == "postgresql://app:***@db.example:5432/agentlog"
    assert redactor.redact("auth failed for password 'p@ss w/rd!'") == (
        "auth failed for password '***'"
    )
    assert url_password_forms("postgresql://postgres@127.0.0.1:5432/x") == []


def test_secrets_from_environment_picks_credentials_only() -> None:
    """LLM keys, AGENTLOG_/OPENAI_ *_KEY/_SECRET/_TOKEN/_PASSWORD, URL passwords; not the rest."""
    environ = {
        "AGENTLOG_LLM_API_KEY": "sk-agentlog-key",
        "OPENAI_API_KEY": "sk-openai-key",
        "AGENTLOG_AUTH_SIGNING_KEY": "ed25519-private-material",
        "AGENTLOG_AUTH_PUBLIC_KEY": "ed25519-public-material",
        "AGENTLOG_WEBHOOK_SECRET": "whsec-123456",
        "OPENAI_SESSION_TOKEN": "tok-abcdef",
        "AGENTLOG_SMTP_PASSWORD": "hunter22",
        "AGENTLOG_DATABASE_URL": "postgresql://u:db-pass-word@h/d",
        "AGENTLOG_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
        "AGENTLOG_LLM_MODEL": "gpt-4o-mini",
        "OTHER_API_KEY": "not-ours-123",
        "AGENTLOG_SHORT_KEY": "abc",
    }
    assert set(secrets_from_environment(environ)) == {
        "sk-agentlog-key",
        "sk-openai-key",
        "ed25519-private-material",
        "whsec-123456",
        "tok-abcdef",
        "hunter22",
        "db-pass-word",
    }


# --- logging --------------------------------------------------------------------------------


def test_the_filter_redacts_message_args_and_traceback() -> None:
    """A record's rendered message, its exception chain and stack text lose the secret."""
    redactor = Redactor()
    key = _key()
    redactor.register_secret(key)
    record = _record("calling with %s (%d)", key, 3, exc=_raised(f"server said: bad key {key}"))
    record.stack_info = f"Stack (most recent call last):\n  frame with {key}"
    out = _formatted(record, redactor)
    assert key not in out
    assert "calling with *** (3)" in out
    assert "ValueError: server said: bad key ***" in out
    assert "RuntimeError: wrapped" in out  # the traceback itself is kept
    assert "frame with ***" in out


def test_the_filter_protects_formatters_that_render_exc_info_themselves() -> None:
    """After the filter no raw exception is left on the record for another formatter."""
    redactor = Redactor()
    key = _key()
    redactor.register_secret(key)
    record = _record("failed", exc=_raised(key))
    RedactingFilter(redactor).filter(record)
    assert record.exc_info is None
    assert record.exc_text is not None
    assert key not in record.exc_text
    assert key not in logging.Formatter().format(record)


def test_configure_logging_redacts_a_service_process() -> None:
    """A process set up by configure_logging keeps env secrets out of logs, spans, crashes."""
    key, db_password = _key(), f"pw-{secrets.token_hex(8)}"
    script = textwrap.dedent(
        """
        import logging, os
        from opentelemetry import trace
        from shared.runtime.lifecycle import configure_logging
        from shared.telemetry import configure_tracing, shutdown_tracing

        configure_logging("probe")
        configure_tracing("probe", "console")
        key = os.environ["AGENTLOG_LLM_API_KEY"]
        log = logging.getLogger("probe")
        log.info("plain arg %s", key)
        try:
            raise PermissionError(f"401 Incorrect API key provided: {key}")
        except PermissionError:
            log.exception("task failed")
        with trace.get_tracer("probe").start_as_current_span("s") as span:
            span.set_attribute("error.detail", key)
            span.record_exception(PermissionError(f"echo {key}"))
        shutdown_tracing()
        raise SystemError("crash with " + os.environ["AGENTLOG_DATABASE_URL"])
        """
    )
    env = {
        **os.environ,
        "AGENTLOG_LLM_API_KEY": key,
        "AGENTLOG_DATABASE_URL": f"postgresql://app:{db_password}@127.0.0.1:1/x",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1
    assert "plain arg ***" in output
    assert "PermissionError: 401 Incorrect API key provided: ***" in output
    assert '"error.detail": "***"' in output  # the console exporter's span JSON
    assert "SystemError: crash with postgresql://app:***@127.0.0.1:1/x" in output
    assert key not in output
    assert db_password not in output


# --- spans ----------------------------------------------------------------------------------


def test_span_exporter_redacts_attributes_events_and_status() -> None:
    """What is exported carries no secret; names, ids and other values survive."""
    redactor = Redactor()
    key = _key()
    redactor.register_secret(key)
    inner = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(inner, redactor)))
    with provider.get_tracer("t").start_as_current_span("call") as span:
        span.set_attribute("http.detail", f"Bearer {key}")
        span.set_attribute("tags", ["ok", key])
        span.set_attribute("count", 3)
        span.add_event("retry", {"reason": f"rejected {key}"})
        span.record_exception(RuntimeError(f"echoed {key}"))
        span.set_status(Status(StatusCode.ERROR, f"failed with {key}"))
    provider.shutdown()
    [exported] = inner.get_finished_spans()
    dumped = exported.to_json()
    assert key not in dumped
    assert exported.attributes is not None
    assert exported.attributes["http.detail"] == "Bearer ***"
    assert exported.attributes["tags"] == ("ok", "***")
    assert exported.attributes["count"] == 3
    assert [e.name for e in exported.events] == ["retry", "exception"]
    exception = exported.events[1].attributes or {}
    assert exception["exception.message"] == "echoed ***"
    assert exported.status.description == "failed with ***"
    assert exported.context == span.get_span_context()


# --- the provider and the worker ------------------------------------------------------------


@pytest.fixture
def provider() -> Iterator[EchoingProvider]:
    """The fake provider that repeats the key in its errors."""
    fake = EchoingProvider()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def _delivery() -> Delivery:
    task = write_task()
    return Delivery(
        message=task,
        topic=task_topic("writer"),
        partition=0,
        offset=0,
        key=task.workflow_id,
        ce_id="cmd",
        ce_type=task.TYPE,
        ce_source="test",
        ce_time=None,
        ce_subject=task.workflow_id,
    )


async def _work_once(
    provider: EchoingProvider, key: str, caplog: pytest.LogCaptureFixture
) -> dict[str, object]:
    """The writer worker, on the real adapter, answers one task; returns the published body."""
    # configure_logging puts this filter on every root handler; caplog's handler is one here.
    redacting = RedactingFilter(REDACTOR)
    caplog.handler.addFilter(redacting)
    model = OpenAICompatibleModel(
        "fake-model",
        base_url=provider.base_url,
        environ={"AGENTLOG_LLM_API_KEY": key},
        max_retries=0,
    )

    async def perform(task: TaskCommand) -> TaskResult:
        assert isinstance(task, WriteTask)
        return await write_draft(task, model)

    try:
        async with model, InMemoryBus(service="writer", topics=[RESULTS]) as bus:
            worker = TaskWorker("writer", WriteTask, perform, bus, SystemClock())
            with caplog.at_level(logging.DEBUG):
                await worker.handle(_delivery())
            [record] = bus.records(RESULTS)
    finally:
        caplog.handler.removeFilter(redacting)
    echoed = provider.bodies_sent[-1]
    assert key in provider.keys_seen
    assert key in echoed
    raw = (record.value or b"") + b"".join(value for _, value in record.headers)
    assert key.encode() not in raw
    assert key not in caplog.text
    # The logged traceback still shows what the provider said, minus the key.
    assert echoed.replace(key, "***") in caplog.text
    body: dict[str, object] = json.loads(record.value or b"")
    return body


@pytest.mark.parametrize("status", ["401", "403"])
async def test_a_rejected_key_fails_the_task_once_with_a_clear_reason(
    provider: EchoingProvider, status: str, caplog: pytest.LogCaptureFixture
) -> None:
    """401/403 is a non-retryable failure naming model and host, never the echoed key."""
    provider.mode = status
    key = _key()
    failure = await _work_once(provider, key, caplog)
    host = provider.base_url.removeprefix("http://").removesuffix("/v1")
    assert failure["retryable"] is False
    assert (
        f"the model provider rejected the API key for model 'fake-model' at {host} "
        f"(HTTP {status})" in str(failure["error"])
    )
    assert len(provider.keys_seen) == 1
    assert "task write-0 attempt 1 failed" in caplog.text


async def test_a_server_error_echoing_the_key_stays_retryable_and_redacted(
    provider: EchoingProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """A 500 whose body repeats the key is retryable; its text is kept, minus the key."""
    provider.mode = "500"
    failure = await _work_once(provider, _key(), caplog)
    assert failure["retryable"] is True
    assert "HTTP 500" in str(failure["error"])
    assert "signed with ***" in str(failure["error"])


async def test_a_rate_limit_is_reported_after_the_providers_retry_after(
    provider: EchoingProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """A 429 stays retryable and the failure is published only after ``retry-after``."""
    provider.mode, provider.retry_after = "429", "0.3"
    started = time.monotonic()
    failure = await _work_once(provider, _key(), caplog)
    assert time.monotonic() - started >= 0.3
    assert failure["retryable"] is True
    assert "HTTP 429 (retry after 0.3 s)" in str(failure["error"])


def test_retry_after_headers_are_parsed() -> None:
    """Milliseconds win over seconds; dates count from now; junk and absence mean no wait."""
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


async def test_any_exception_text_is_redacted_in_the_failure() -> None:
    """A non-model dependency error echoing a registered secret is published redacted."""
    key = _key()
    register_secret(key)

    async def explode(task: TaskCommand) -> DraftResult:
        raise ConnectionError(f"proxy refused credentials {key}")

    async with InMemoryBus(service="writer", topics=[RESULTS]) as bus:
        worker = TaskWorker("writer", WriteTask, explode, bus, SystemClock())
        await worker.handle(_delivery())
        [record] = bus.records(RESULTS)
    failure = json.loads(record.value or b"")
    assert failure["error"] == "ConnectionError: proxy refused credentials ***"
    assert failure["retryable"] is True
    assert redact(key) == "***"


def test_the_workflow_fails_at_once_with_the_rejection_as_its_reason() -> None:
    """The supervisor's domain turns a non-retryable writer failure into WorkflowFailed."""
    reason = "ModelError: the model provider rejected the API key for model 'm' at h (HTTP 401)"
    policy = WorkflowPolicy(max_attempts=3)
    now = write_task().deadline
    history = decide(
        replay("wf-k", []),
        GoalReceived(GoalSubmitted(workflow_id="wf-k", goal="explain replay"), policy, now),
    )
    search = history[-1]
    prov = Provenance(provider="p", model="m", strategy_version="1")
    passages = [Passage(source_id="d#1", title="D", text="replay rebuilds state")]
    history += decide(
        replay("wf-k", history),
        ResultReceived(
            SearchResult(
                workflow_id="wf-k",
                task_id=search.task_id,  # type: ignore[attr-defined]  # a TaskScheduled
                attempt=1,
                provenance=prov,
                passages=passages,
            ),
            now,
        ),
    )
    write = history[-1]
    events = decide(
        replay("wf-k", history),
        ResultReceived(
            TaskFailureMessage(
                workflow_id="wf-k",
                task_id=write.task_id,  # type: ignore[attr-defined]  # a TaskScheduled
                attempt=1,
                agent="writer",
                provenance=prov,
                error=reason,
                retryable=False,
            ),
            now,
        ),
    )
    assert [type(e).__name__ for e in events] == ["TaskFailed", "WorkflowFailed"]
    failed = events[-1]
    assert isinstance(failed, WorkflowFailed)
    assert "writer task" in failed.reason
    assert "after attempt 1" in failed.reason
    assert reason in failed.reason
