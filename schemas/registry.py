"""Type name → model: how a consumer turns ``(ce_type, bytes)`` back into a message."""

from __future__ import annotations

from schemas.base import Message
from schemas.events import RecordedEventMessage
from schemas.messages import (
    ApprovalDecision,
    CancelWorkflow,
    CompletionEvent,
    CompletionEventV1,
    CritiqueResult,
    CritiqueTask,
    DraftResult,
    ForkWorkflow,
    GoalSubmitted,
    ManifestResult,
    PauseScheduling,
    RollbackWorkflow,
    SearchResult,
    SearchTask,
    SummarizeTask,
    TaskFailure,
    WriteTask,
)

__all__ = [
    "MESSAGE_TYPES",
    "UnknownMessageTypeError",
    "decode_message",
    "encode_message",
    "model_for",
]

MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        GoalSubmitted,
        SearchTask,
        WriteTask,
        CritiqueTask,
        SummarizeTask,
        SearchResult,
        DraftResult,
        CritiqueResult,
        ManifestResult,
        TaskFailure,
        CancelWorkflow,
        RollbackWorkflow,
        ForkWorkflow,
        PauseScheduling,
        ApprovalDecision,
        CompletionEvent,
        CompletionEventV1,
        RecordedEventMessage,
    )
}


class UnknownMessageTypeError(ValueError):
    """The ``ce_type`` names no message this version of agentlog knows."""


def model_for(message_type: str) -> type[Message]:
    """The model registered for a CloudEvents type."""
    try:
        return MESSAGE_TYPES[message_type]
    except KeyError:
        raise UnknownMessageTypeError(f"unknown message type {message_type!r}") from None


def decode_message(message_type: str, payload: bytes) -> Message:
    """Validate a JSON payload as the model for ``message_type``.

    Raises UnknownMessageTypeError or pydantic.ValidationError; callers dead-letter both.
    """
    return model_for(message_type).model_validate_json(payload)


def encode_message(message: Message) -> bytes:
    """The JSON payload for a message."""
    return message.model_dump_json().encode()
