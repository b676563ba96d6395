"""JSON log lines: one object per line with the trace and workflow ids, and no secrets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from schemas.topics import GOALS
from shared.runtime.log_context import current_workflow_id, workflow_context
from shared.runtime.redaction import RedactingFilter, Redactor
from shared.telemetry.logs import JsonFormatter, log_formatter
from shared.transport import Delivery, InMemoryBus, Subscription
from tests.contracts.transport import ce_headers, goal

_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose handler is set up as configure_logging does: redacting filter, JSON."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    redactor = Redactor()
    redactor.register_secret("hunter2-secret")
    handler.addFilter(RedactingFilter(redactor))
    handler.setFormatter(JsonFormatter("writer", redactor))
    logger = logging.getLogger(f"test.json.{secrets.token_hex(4)}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def _parsed(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_carries_service_level_logger_and_ids(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    """Inside a span and a workflow, the line names both; outside, both are null."""
    logger, stream = lines
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("step") as span, workflow_context(b"wf-42"):
        logger.info("drafted %d words", 120, extra={"task_id": "writer-v3"})
    logger.warning("idle")
    inside, outside = _parsed(stream)
    context = span.get_span_context()
    assert inside["message"] == "drafted 120 words"
    assert inside["level"] == "INFO"
    assert inside["service"] == "writer"
    assert inside["logger"] == logger.name
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert inside["workflow_id"] == "wf-42"
    assert inside["task_id"] == "writer-v3"
    assert str(inside["timestamp"]).endswith("Z")
    assert outside["trace_id"] is None
    assert outside["workflow_id"] is None


def test_secrets_are_redacted_from_message_exception_and_extras(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    """A secret in the message, a traceback or an extra field never reaches the JSON line."""
    logger, stream = lines
    try:
        raise PermissionError("401 with key hunter2-secret")
    except PermissionError:
        logger.exception("call failed with hunter2-secret", extra={"url": "x?k=hunter2-secret"})
    [line] = _parsed(stream)
    assert "hunter2-secret" not in stream.getvalue()
    assert line["message"] == "call failed with ***"
    assert "PermissionError: 401 with key ***" in str(line["exception"])
    assert line["url"] == "x?k=***"


def test_log_format_names_text_json_or_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    """json picks the JSON formatter, text keeps the default, a typo warns and keeps text."""
    assert isinstance(log_formatter("critic", " JSON "), JsonFormatter)
    assert log_formatter("critic", "text") is None
    with caplog.at_level(logging.WARNING):
        assert log_formatter("critic", "jsno") is None
    assert "unknown AGENTLOG_LOG_FORMAT 'jsno'" in caplog.text


async def test_the_transport_binds_each_records_workflow(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    """What a handler logs names the record's workflow; it is unbound again afterwards."""
    logger, stream = lines
    handled = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        logger.info("handling")
        handled.set()

    async with InMemoryBus(service="supervisor") as bus:
        await bus.subscribe(Subscription([GOALS], "agentlog.supervisor", handle, "supervisor"))
        bus.inject_raw(
            GOALS, "wf-7", goal("bound", "wf-7").model_dump_json().encode(), ce_headers()
        )
        await asyncio.wait_for(handled.wait(), 10)
    [line] = _parsed(stream)
    assert line["workflow_id"] == "wf-7"
    assert current_workflow_id() is None


def test_configure_logging_writes_redacted_json_lines() -> None:
    """A service process with AGENTLOG_LOG_FORMAT=json logs JSON lines, secrets redacted."""
    key = f"sk-{secrets.token_hex(12)}"
    script = textwrap.dedent(
        """
        import logging, os
        from shared.runtime.lifecycle import configure_logging
        from shared.runtime.log_context import workflow_context

        configure_logging("probe")
        log = logging.getLogger("probe")
        with workflow_context("wf-json"):
            log.info("using %s", os.environ["AGENTLOG_LLM_API_KEY"])
        try:
            raise PermissionError("echo " + os.environ["AGENTLOG_LLM_API_KEY"])
        except PermissionError:
            log.exception("failed")
        """
    )
    env = {**os.environ, "AGENTLOG_LLM_API_KEY": key, "AGENTLOG_LOG_FORMAT": "json"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert key not in done.stderr
    first, second = (json.loads(line) for line in done.stderr.splitlines())
    assert first["message"] == "using ***"
    assert first["service"] == "probe"
    assert first["workflow_id"] == "wf-json"
    assert "PermissionError: echo ***" in second["exception"]
