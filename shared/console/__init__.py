"""The web console: server-rendered pages over the read side, live by server-sent events,
with signed-in users whose changes are signed with their own keys (docs/console.md)."""

from shared.console.access import Access, ConsoleRole, Identity, User, hash_password
from shared.console.actions import Actions, BusFactory
from shared.console.app import create_app
from shared.console.deadletters import (
    DeadLetterRow,
    DeadLetterSource,
    KafkaDeadLetters,
    MemoryDeadLetters,
)
from shared.console.settings import ConsoleSettings

__all__ = [
    "Access",
    "Actions",
    "BusFactory",
    "ConsoleRole",
    "ConsoleSettings",
    "DeadLetterRow",
    "DeadLetterSource",
    "Identity",
    "KafkaDeadLetters",
    "MemoryDeadLetters",
    "User",
    "create_app",
    "hash_password",
]
