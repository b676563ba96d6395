"""Whether this machine can run Apache Kafka for the tests, and the mark that skips when not.

Apache Kafka needs Java 17+ and its jars (resolved by Maven once, then cached). The Kafka runs
skip only when one of those is missing, and the skip says which.
"""

from __future__ import annotations

import shutil

import pytest

from shared.stack import StackError
from shared.stack.kafka_jars import find_java, jars_cached

__all__ = ["KAFKA_MISSING", "needs_kafka"]


def _missing() -> str | None:
    try:
        find_java()
    except StackError as exc:
        return str(exc)
    if not jars_cached() and shutil.which("mvn") is None:
        return "`mvn` is not on PATH and Apache Kafka's jars are not cached"
    return None


#: Why Apache Kafka cannot run here, or None when it can.
KAFKA_MISSING = _missing()
needs_kafka = pytest.mark.skipif(
    KAFKA_MISSING is not None, reason=f"no Apache Kafka here: {KAFKA_MISSING}"
)
