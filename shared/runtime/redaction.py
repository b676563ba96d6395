"""Keep configured secrets out of logs, spans, recorded failures and messages.

Dependencies put whatever they like in their exception text: an HTTP client echoes a server's
error body, which may repeat the API key it was sent; a database driver may repeat its DSN.
Rather than scrub at each call site, every process registers its secret values once with the
process-wide ``Redactor`` and the places where text leaves the process pass through it:

* ``RedactingFilter``, installed on the root handlers by ``configure_logging``, rewrites each
  record's message, traceback and stack text before any handler formats it;
* ``shared.telemetry`` wraps the span exporter so attributes, events and status descriptions
  are redacted before export;
* the worker redacts a failed task's error text before it is published and stored.

``configure_logging`` registers ``secrets_from_environment(os.environ)``; other modules that
hold key material (the model adapter, message signing) call ``register_secret`` themselves.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Final
from urllib.parse import quote, unquote, urlsplit

__all__ = [
    "MIN_SECRET_CHARS",
    "PLACEHOLDER",
    "REDACTOR",
    "RedactingFilter",
    "Redactor",
    "install_excepthook",
    "redact",
    "register_secret",
    "secrets_from_environment",
    "url_password_forms",
]

PLACEHOLDER: Final = "***"
#: Shorter values are ignored: redacting "abc" or "true" everywhere would mangle logs while
#: protecting nothing worth protecting.
MIN_SECRET_CHARS: Final = 6

#: Variables whose value is a credential wherever it is set.
_NAMED_SECRETS: Final = ("AGENTLOG_LLM_API_KEY", "OPENAI_API_KEY")
_SECRET_PREFIXES: Final = ("AGENTLOG_", "OPENAI_")
_SECRET_SUFFIXES: Final = ("_KEY", "_SECRET", "_TOKEN", "_PASSWORD")


class Redactor:
    """A set of secret strings, and ``redact`` to replace each occurrence with ``***``.

    Thread-safe: registration swaps in a new compiled pattern, ``redact`` reads whichever one
    is current.
    """

    def __init__(self, placeholder: str = PLACEHOLDER) -> None:
        self._placeholder = placeholder
        self._secrets: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def register_secret(self, value: str | None) -> None:
        """Redact ``value`` from now on; blank or short values (< 6 chars) are ignored."""
        if value is None:
            return
        value = value.strip()
        if len(value) < MIN_SECRET_CHARS:
            return
        with self._lock:
            if value in self._secrets:
                return
            secrets = self._secrets | {value}
            # Longest first, so a secret that contains another is replaced whole.
            ordered = sorted(secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
            self._secrets = secrets

    def register_secrets(self, values: Iterable[str]) -> None:
        """``register_secret`` for each value."""
        for value in values:
            self.register_secret(value)

    def redact(self, text: str) -> str:
        """``text`` with every registered secret replaced by the placeholder."""
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(self._placeholder, text)

    def __contains__(self, value: object) -> bool:
        return value in self._secrets

    def __len__(self) -> int:
        return len(self._secrets)

    def __repr__(self) -> str:
        # Never the values: a repr ends up in logs and debugger output.
        return f"Redactor({len(self._secrets)} secrets)"


#: The process-wide redactor every output path uses.
REDACTOR: Final = Redactor()


def register_secret(value: str | None) -> None:
    """Register ``value`` with the process-wide redactor (see ``Redactor.register_secret``)."""
    REDACTOR.register_secret(value)


def redact(text: str) -> str:
    """``text`` with every secret registered in this process replaced by ``***``."""
    return REDACTOR.redact(text)


def url_password_forms(url: str) -> list[str]:
    """The password in ``url`` as written, URL-decoded and percent-encoded; [] if none.

    A driver may echo the DSN as given, or the password after decoding it, so all forms count.
    """
    try:
        raw_password = urlsplit(url).password
    except ValueError:
        return []
    if not raw_password:
        return []
    decoded = unquote(raw_password)
    return list(dict.fromkeys([raw_password, decoded, quote(decoded, safe="")]))


def secrets_from_environment(environ: Mapping[str, str]) -> list[str]:
    """The secret values set in ``environ``.

    The LLM API keys; any ``AGENTLOG_*``/``OPENAI_*`` variable named ``*_KEY``, ``*_SECRET``,
    ``*_TOKEN`` or ``*_PASSWORD`` (public keys excepted: they are meant to be shown); and the
    password of any ``AGENTLOG_*_URL`` such as ``AGENTLOG_DATABASE_URL``.
    """
    found: list[str] = []
    for name, value in environ.items():
        upper = name.upper()
        if not value or not upper.startswith(_SECRET_PREFIXES):
            continue
        if upper in _NAMED_SECRETS or (upper.endswith(_SECRET_SUFFIXES) and "PUBLIC" not in upper):
            found.append(value.strip())
        if upper.endswith("_URL"):
            found.extend(url_password_forms(value))
    return [value for value in dict.fromkeys(found) if len(value) >= MIN_SECRET_CHARS]


class RedactingFilter(logging.Filter):
    """Redacts a record in place before a handler formats it: message, traceback, stack.

    The traceback is rendered here, redacted into ``exc_text`` and ``exc_info`` dropped, so no
    formatter can render the raw exception again; stdlib formatters print ``exc_text`` as-is.
    """

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self._redactor = redactor
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_agentlog_redacted", False):
            return True  # several handlers share one record; the work is done once
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as usual
            message = None
        if message is not None:
            record.msg = self._redactor.redact(message)
            record.args = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self._redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redactor.redact(record.stack_info)
        record._agentlog_redacted = True
        return True


def install_excepthook(redactor: Redactor = REDACTOR) -> None:
    """Print uncaught exceptions (main thread and others) redacted, as the default hooks would.

    An exception that escapes ``main`` is printed by the interpreter, not through logging.
    """

    def _print(
        exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write(redactor.redact(text))
        sys.stderr.flush()

    def _hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        _print(exc_type, exc, tb)

    def _thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "unknown"
        sys.stderr.write(f"Exception in thread {name}:\n")
        _print(args.exc_type, args.exc_value, args.exc_traceback)

    sys.excepthook = _hook
    threading.excepthook = _thread_hook
