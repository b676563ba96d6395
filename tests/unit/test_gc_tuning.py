"""The collector settings every agentlog process starts with (shared.runtime.gc_tuning)."""

from __future__ import annotations

import gc

from shared.runtime.gc_tuning import GC_THRESHOLDS, tune_gc


def test_tune_gc_freezes_what_exists_and_raises_the_thresholds() -> None:
    """After tune_gc the objects alive at the call are in the permanent generation, and the
    collector runs at the raised thresholds; a second call changes nothing."""
    thresholds = gc.get_threshold()
    survivor = [object()]  # a tracked container alive at start-up
    try:
        tune_gc()
        frozen = gc.get_freeze_count()
        assert frozen > 0
        assert gc.get_threshold() == GC_THRESHOLDS
        assert not any(o is survivor for o in gc.get_objects())  # not walked any more
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    assert any(o is survivor for o in gc.get_objects())
