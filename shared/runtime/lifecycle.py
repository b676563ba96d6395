"""A service's main: one async block that ends cleanly on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Iterable

from shared.runtime.gc_tuning import tune_gc
from shared.runtime.log_limits import RepeatFilter
from shared.runtime.redaction import (
    REDACTOR,
    RedactingFilter,
    install_excepthook,
    secrets_from_environment,
)
from shared.telemetry.logs import log_formatter

__all__ = ["configure_logging", "run_until_signalled"]


def configure_logging(service: str, secrets: Iterable[str] = ()) -> None:
    """Logs on stderr, plain text or JSON lines (AGENTLOG_LOG_FORMAT=text|json, see
    ``shared.telemetry.logs``); level from AGENTLOG_LOG_LEVEL; secrets redacted.

    The secrets set in the environment (see ``secrets_from_environment``) and ``secrets`` are
    registered with the process-wide redactor, and every root handler redacts its records, so
    no call site has to remember to scrub what a dependency put in an exception.
    """
    REDACTOR.register_secrets(secrets_from_environment(os.environ))
    REDACTOR.register_secrets(secrets)
    logging.basicConfig(
        level=os.environ.get("AGENTLOG_LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
    )
    formatter = log_formatter(service, os.environ.get("AGENTLOG_LOG_FORMAT", "text"))
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(REDACTOR))
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter())  # a retrying client's storm: one line a window
        if formatter is not None:
            handler.setFormatter(formatter)
    install_excepthook(REDACTOR)
    # aiokafka logs every rebalance and coordinator hop at INFO; keep the service log readable.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def run_until_signalled(serve: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``serve(stop)`` until it returns; SIGTERM/SIGINT set ``stop``."""
    tune_gc()  # the imports are done: see shared.runtime.gc_tuning

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(stop)

    asyncio.run(_main())
