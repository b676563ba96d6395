"""JSON log lines (``AGENTLOG_LOG_FORMAT=json``) that a log pipeline can join with traces.

Each line is one JSON object: ``timestamp`` (UTC, ISO 8601), ``level``, ``service``,
``logger``, ``message``, then ``trace_id`` and ``span_id`` of the OpenTelemetry span current
where the line was logged and ``workflow_id`` (``shared.runtime.log_context``), each ``null``
when there is none; then ``exception`` and ``stack`` when present, and whatever the call site
passed as ``extra``. Standard-library logging only: the formatter goes on the handlers
``configure_logging`` sets up, after the redacting filter, which has already scrubbed the
message and traceback by the time a line is formatted; the formatter redacts every string it
writes again (``extra`` values too), so a handler set up without the filter leaks nothing.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Final

from opentelemetry import trace

from shared.runtime.log_context import current_workflow_id
from shared.runtime.redaction import REDACTOR, Redactor

__all__ = ["LOG_FORMATS", "JsonFormatter", "log_formatter"]

LOG_FORMATS: Final = ("text", "json")

_log = logging.getLogger(__name__)

#: What every LogRecord has; anything else on a record came from ``extra``.
_RECORD_FIELDS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "_agentlog_redacted",
}


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON for ``service``."""

    def __init__(self, service: str, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self._service = service
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        span = trace.get_current_span().get_span_context()
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "message": self._redactor.redact(record.getMessage()),
            "trace_id": format(span.trace_id, "032x") if span.is_valid else None,
            "span_id": format(span.span_id, "016x") if span.is_valid else None,
            "workflow_id": current_workflow_id(),
        }
        # The filter has usually rendered and scrubbed the traceback already; a handler set up
        # without it (a library's, a test's) still gets a redacted line.
        exception = record.exc_text
        if record.exc_info and not exception:
            exception = self.formatException(record.exc_info)
        if exception:
            line["exception"] = self._redactor.redact(exception)
        if record.stack_info:
            line["stack"] = self._redactor.redact(self.formatStack(record.stack_info))
        for name, value in record.__dict__.items():
            if name not in _RECORD_FIELDS and name not in line:
                line[name] = self._redacted(value)
        return json.dumps(line, default=str, ensure_ascii=False)

    def _redacted(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redactor.redact(value)
        if isinstance(value, int | float | bool) or value is None:
            return value
        # Anything else is written as its text; redact that text, not the object.
        return self._redactor.redact(str(value))


def log_formatter(service: str, name: str) -> logging.Formatter | None:
    """The formatter ``AGENTLOG_LOG_FORMAT=name`` asks for; None keeps the plain text format.

    An unknown name is reported and falls back to text: a typo must not cost the logs.
    """
    chosen = name.strip().lower()
    if chosen == "json":
        return JsonFormatter(service)
    if chosen not in LOG_FORMATS:
        _log.warning("unknown AGENTLOG_LOG_FORMAT %r (expected text or json); using text", name)
    return None
