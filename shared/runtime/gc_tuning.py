"""The garbage-collector settings every agentlog process runs with.

After start-up a service or the CLI holds some hundred thousand objects that live as long as
the process (pydantic schemas, aiokafka, OpenTelemetry, the registry of message types). Each
full collection walks all of them, and handling a message or folding a stream allocates enough
to set collections off again and again: on a 1,000-event ``state_at`` the collector took about
10 ms of the 20-odd (``tests/bench/timetravel.py``; the gen-2 passes most of it).

So every process, once its imports are done, moves what exists into the permanent generation
(``gc.freeze``: never walked again, and never freed, which objects living as long as the process
never are anyway), and collects the youngest generation every 10,000 net allocations instead of
every 700: a message's or a read's short-lived objects are freed by reference counting before a
collection ever sees them, and the rare reference cycles still get collected.
"""

from __future__ import annotations

import gc

__all__ = ["GC_THRESHOLDS", "tune_gc"]

#: Net allocations before a gen-0 pass; gen-0 passes before a gen-1 pass; gen-1 before gen-2.
GC_THRESHOLDS = (10_000, 20, 20)


def tune_gc() -> None:
    """Freeze what start-up created and raise the collection thresholds (idempotent).

    No collection first: a full pass costs tens of milliseconds at a CLI command's start, for
    the little garbage imports leave behind.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
