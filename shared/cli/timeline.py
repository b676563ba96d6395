"""Kept for importers of the first layout: the timeline moved to ``shared.readside.queries``,
the read side every interface shares."""

from __future__ import annotations

from shared.readside.queries import TimelineRow, describe, timeline

__all__ = ["TimelineRow", "describe", "timeline"]
