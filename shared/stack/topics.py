"""Create agentlog's topics the moment the stack starts a broker.

Services create the topics they use when they start, but a broker restarted under running
services has none, and until someone creates them it acknowledges records sent to them and
loses them (Tansu also keeps those records' files, which later collide with the re-created
topic's first offsets). Creating every topic as soon as the broker answers leaves no such
window. Runs on its own thread and event loop, so ``up()`` works inside or outside one.
"""

from __future__ import annotations

import asyncio
import threading

from schemas.topics import TOPICS
from shared.settings import load_settings
from shared.stack.errors import StackError
from shared.transport.admin import ensure_topics

__all__ = ["create_topics"]


def create_topics(bootstrap: str, partitions: int | None = None) -> list[str]:
    """Create every agentlog topic and DLQ missing on ``bootstrap``; the names created."""
    count = partitions if partitions is not None else load_settings().topic_partitions
    created: list[str] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            created.extend(
                asyncio.run(ensure_topics(bootstrap, [t.name for t in TOPICS], partitions=count))
            )
        except Exception as exc:  # reported on the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="agentlog-create-topics")
    thread.start()
    thread.join()
    if failure:
        raise StackError(f"the broker started but its topics could not be created: {failure[0]!r}")
    return created
