"""Every message that crosses a Kafka topic, and every workflow domain event.

Each model carries its versioned type name as the class variable ``TYPE`` (used as the
CloudEvents ``ce_type``); the registry maps type names back to models.
"""

from schemas.base import Message
from schemas.events import DOMAIN_EVENTS, DomainEvent
from schemas.messages import (
    ApprovalDecision,
    CancelWorkflow,
    Citation,
    CompletionEvent,
    CompletionEventV1,
    CritiqueResult,
    CritiqueTask,
    DraftResult,
    ForkWorkflow,
    GoalSubmitted,
    ManifestResult,
    MemoryItem,
    Passage,
    PauseScheduling,
    Provenance,
    RollbackWorkflow,
    SearchResult,
    SearchTask,
    SummarizeTask,
    TaskFailure,
    WriteTask,
)
from schemas.registry import (
    MESSAGE_TYPES,
    UnknownMessageTypeError,
    decode_message,
    encode_message,
    model_for,
)
from schemas.topics import TOPICS, Topic, dlq_topic

__all__ = [
    "DOMAIN_EVENTS",
    "MESSAGE_TYPES",
    "TOPICS",
    "ApprovalDecision",
    "CancelWorkflow",
    "Citation",
    "CompletionEvent",
    "CompletionEventV1",
    "CritiqueResult",
    "CritiqueTask",
    "DomainEvent",
    "DraftResult",
    "ForkWorkflow",
    "GoalSubmitted",
    "ManifestResult",
    "MemoryItem",
    "Message",
    "Passage",
    "PauseScheduling",
    "Provenance",
    "RollbackWorkflow",
    "SearchResult",
    "SearchTask",
    "SummarizeTask",
    "TaskFailure",
    "Topic",
    "UnknownMessageTypeError",
    "WriteTask",
    "decode_message",
    "dlq_topic",
    "encode_message",
    "model_for",
]
