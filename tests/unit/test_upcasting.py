"""Stored events written by an older schema version are upcast to the current model on read."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from schemas import events
from schemas.events import DomainEvent, upcast


class ManifestNoted(DomainEvent):
    """A test event at schema version 3: v1 had ``text``, v2 renamed it, v3 added ``lang``."""

    VERSION: ClassVar[int] = 3

    body: str
    lang: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["body"] = state.pop("text")

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state.setdefault("lang", "en")


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the test event for the duration of a test."""
    monkeypatch.setitem(events.DOMAIN_EVENTS, "ManifestNoted", ManifestNoted)


def test_v1_record_is_upcast_through_every_step(registered: None) -> None:
    """A v1 record passes through v1→v2 and v2→v3 and validates as the current model."""
    event = upcast("ManifestNoted", 1, {"text": "hello"})
    assert event == ManifestNoted(body="hello", lang="en")


def test_current_record_is_not_touched(registered: None) -> None:
    """A record already at the current version validates as stored."""
    assert upcast("ManifestNoted", 3, {"body": "b", "lang": "de"}) == ManifestNoted(
        body="b", lang="de"
    )


def test_stored_data_is_not_mutated(registered: None) -> None:
    """Upcasting works on a copy: the record read from the store stays as it was."""
    stored = {"text": "hello"}
    upcast("ManifestNoted", 1, stored)
    assert stored == {"text": "hello"}


def test_unknown_event_type_is_a_clear_error() -> None:
    """An event type this version does not know raises a ValueError naming it."""
    with pytest.raises(ValueError, match="BrandNew"):
        upcast("BrandNew", 1, {})
