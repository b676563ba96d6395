"""The profiler's folding of py-spy samples (``make profile``)."""

from __future__ import annotations

from tests.bench.profile import fold_samples

_ROOT = "<module> (services/supervisor/__main__.py:1);run (asyncio/runners.py:44)"
_RAW = f"""\
{_ROOT};handle (services/supervisor/handler.py:90);append (shared/eventstore/postgres.py:250) 6
{_ROOT};handle (services/supervisor/handler.py:95);verify (shared/auth/signing.py:78) 3
{_ROOT};select (selectors.py:451) 1
not a sample line
"""


def test_fold_samples_counts_self_and_inclusive_time_per_function() -> None:
    """Self time goes to the innermost frame; inclusive time to agentlog's and libraries'
    frames on the stack, lines merged per function, entry points and the stdlib left out."""
    profile = fold_samples(_RAW)
    assert profile.samples == 10
    assert profile.top(profile.self_counts, 2) == [
        {"function": "append (shared/eventstore/postgres.py)", "percent": 60.0},
        {"function": "verify (shared/auth/signing.py)", "percent": 30.0},
    ]
    inclusive = {e["function"]: e["percent"] for e in profile.top(profile.inclusive_counts)}
    assert inclusive == {
        "handle (services/supervisor/handler.py)": 90.0,
        "append (shared/eventstore/postgres.py)": 60.0,
        "verify (shared/auth/signing.py)": 30.0,
    }
