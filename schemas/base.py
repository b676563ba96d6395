"""The base every message model shares: strict, frozen, size-limited, versioned."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, StringConstraints

__all__ = ["DoorText", "GoalText", "Identifier", "LongText", "Message", "ShortText", "Text"]

# Size limits on free text are part of the contract: a broker will carry anything, so the
# application refuses oversized fields at the edge (see docs/design.md, "Sizes").
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")
]
ShortText = Annotated[str, StringConstraints(max_length=500)]
Text = Annotated[str, StringConstraints(max_length=4_000)]
LongText = Annotated[str, StringConstraints(max_length=200_000)]
# Text arriving from outside (goals, control messages): no NUL characters. PostgreSQL text
# cannot hold them, so one would pass the door and fail every search attempt downstream.
_NO_NUL = r"^[^\x00]*$"
DoorText = Annotated[str, StringConstraints(max_length=500, pattern=_NO_NUL)]
GoalText = Annotated[str, StringConstraints(min_length=3, max_length=4_000, pattern=_NO_NUL)]


class Message(BaseModel):
    """A versioned message; ``TYPE`` is its CloudEvents type (``agentlog.goal.submitted.v1``)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        # Strict: "1" is not an int, 1.5 is not an int, etc. From JSON, ISO-8601 strings still
        # validate as datetimes (JSON has no datetime type); dicts decoded from our own JSON
        # are validated with strict=False at the call site for the same reason.
        strict=True,
        str_strip_whitespace=False,
        ser_json_timedelta="float",
    )

    TYPE: ClassVar[str] = ""
    #: The schema generation; the version suffix of TYPE.
    VERSION: ClassVar[int] = 1
