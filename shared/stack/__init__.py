"""The embedded stack: PostgreSQL 18 and a Kafka-protocol broker (Tansu) as local daemons.

Used by ``agentlog stack up|down|status`` and by the test suite's session fixture.
"""

from __future__ import annotations

from shared.stack.errors import StackError
from shared.stack.stack import (
    ComponentInfo,
    ComponentStatus,
    EmbeddedStack,
    Outcome,
    StackInfo,
    StackStatus,
)

__all__ = [
    "ComponentInfo",
    "ComponentStatus",
    "EmbeddedStack",
    "Outcome",
    "StackError",
    "StackInfo",
    "StackStatus",
]
