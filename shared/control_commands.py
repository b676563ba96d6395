"""Operator commands of the agent controls, for the CLI and the Python client alike: answer an
approval request (approve, deny, add budget), list what waits, and the operator-wide pause.

Decisions go to ``agentlog.approvals`` signed as the ``operator`` principal (approvers with their
own keys may sign them too); the identity the supervisor records is the verified signer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import uuid4

from schemas.events import ApprovalRejected
from schemas.messages import ApprovalDecision, PauseScheduling
from schemas.topics import APPROVALS, CONTROL
from shared.commands import RefusedError
from shared.domain import (
    FLEET_STREAM,
    STATUS_NEUTRAL_EVENTS,
    DecisionReceived,
    WorkflowStatus,
    decide,
    status_after,
)
from shared.eventstore import EventStore
from shared.readside.queries import read_state
from shared.runtime.wiring import kafka_bus
from shared.settings import Settings

__all__ = [
    "FLEET_KEY",
    "PendingApproval",
    "check_decision",
    "pending_approvals",
    "publish_decision",
    "publish_pause",
]

#: Records about the whole fleet (pause/resume) are keyed by this, not by a workflow.
FLEET_KEY = FLEET_STREAM


@dataclass(frozen=True)
class PendingApproval:
    """One workflow waiting in PENDING_APPROVAL, and what it waits for."""

    workflow_id: str
    request_id: str
    kind: str
    step: str | None
    summary: str
    options: list[str]
    deadline: datetime
    version: int

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {**self.__dict__, "deadline": self.deadline.isoformat()}


async def pending_approvals(store: EventStore, limit: int = 1000) -> list[PendingApproval]:
    """Workflows waiting for a decision, oldest request first."""
    waiting: list[PendingApproval] = []
    for stream in await store.list_streams(limit):
        neutral = stream.last_type in STATUS_NEUTRAL_EVENTS
        if not neutral and status_after(stream.last_type) is not WorkflowStatus.PENDING_APPROVAL:
            continue
        state = await read_state(store, stream.stream_id)
        pending = state.pending
        if pending is None:
            continue
        waiting.append(
            PendingApproval(
                workflow_id=stream.stream_id,
                request_id=pending.request_id,
                kind=pending.kind,
                step=pending.step,
                summary=pending.summary,
                options=list(pending.options),
                deadline=pending.deadline,
                version=state.version,
            )
        )
    return sorted(waiting, key=lambda p: (p.deadline, p.workflow_id))


async def check_decision(store: EventStore, decision: ApprovalDecision) -> str:
    """The request a decision answers; RefusedError with the domain's own reason when the
    supervisor would record it as rejected (nothing waits, another request, an option not
    offered, past the deadline), so a mistake is one clear line, not a rejected attempt."""
    state = await read_state(store, decision.workflow_id)
    if state.version == 0:
        raise RefusedError(f"no workflow {decision.workflow_id!r}")
    outcome = decide(state, DecisionReceived(decision, datetime.now(UTC), "operator"))
    rejected = next((e for e in outcome if isinstance(e, ApprovalRejected)), None)
    if rejected is not None:
        raise RefusedError(f"workflow {decision.workflow_id}: {rejected.reason}")
    assert state.pending is not None  # accepted, so something waits
    return state.pending.request_id


async def publish_decision(settings: Settings, decision: ApprovalDecision) -> str:
    """Publish a signed decision on ``agentlog.approvals``; returns its ce_id."""
    ce_id = str(uuid4())
    async with kafka_bus(settings, service="cli", topics=[APPROVALS], principal="operator") as bus:
        await bus.publish(
            APPROVALS, decision, key=decision.workflow_id, ce_id=ce_id, subject=decision.workflow_id
        )
    return ce_id


async def publish_pause(settings: Settings, paused: bool, reason: str = "") -> str:
    """Stop (or restart) scheduling for every workflow; returns the message's ce_id."""
    ce_id = str(uuid4())
    message = PauseScheduling(paused=paused, reason=reason)
    async with kafka_bus(settings, service="cli", topics=[CONTROL], principal="operator") as bus:
        await bus.publish(CONTROL, message, key=FLEET_KEY, ce_id=ce_id, subject=FLEET_KEY)
    return ce_id
