"""`agentlog run <service>`: start one service in the foreground."""

from __future__ import annotations

import importlib
from enum import StrEnum

__all__ = ["ServiceName", "run"]


class ServiceName(StrEnum):
    """The five services."""

    supervisor = "supervisor"
    search = "search"
    writer = "writer"
    critic = "critic"
    summarizer = "summarizer"


def run(service: ServiceName) -> None:
    """Run one service in the foreground until SIGTERM or Ctrl-C.

    The same as `python -m services.<service>`.
    """
    module = importlib.import_module(f"services.{service.value}.main")
    module.main()
