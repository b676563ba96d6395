"""What a console user may change, signed with that user's own key.

Each action checks the store first with the same ``check_*`` the CLI uses (a refusal is one
clear line, nothing published), then publishes the message on a bus that signs as the user's
principal, so the identity the supervisor records is the verified signer, never a form field.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import uuid4

from schemas.base import Message
from schemas.messages import (
    ApprovalDecision,
    CancelWorkflow,
    ForkWorkflow,
    GoalSubmitted,
    RollbackWorkflow,
)
from schemas.topics import APPROVALS, CONTROL, GOALS
from shared.agents.constraints import constraint_problem
from shared.commands import RefusedError, check_cancel, check_fork, check_goal, check_rollback
from shared.console.access import Identity
from shared.control_commands import check_decision
from shared.eventstore import EventStore
from shared.transport import Bus

__all__ = ["Actions", "BusFactory"]

#: Builds an unstarted bus that signs what it publishes as the named principal.
BusFactory = Callable[[str], Bus]


class Actions:
    """The console's writes: goals, decisions, cancel, rollback, fork."""

    def __init__(self, store: EventStore, bus_for: BusFactory) -> None:
        self._store = store
        self._bus_for = bus_for

    async def _publish(self, who: Identity, topic: str, message: Message, key: str) -> str:
        ce_id = str(uuid4())
        async with self._bus_for(who.principal) as bus:
            await bus.publish(topic, message, key=key, ce_id=ce_id, subject=key)
        return ce_id

    async def submit(self, who: Identity, goal: GoalSubmitted) -> str:
        """Publish a goal (after the conflict and constraint checks); returns its ce_id."""
        problem = constraint_problem(goal.constraints)
        if problem is not None:
            raise RefusedError(problem)
        await check_goal(self._store, goal)
        return await self._publish(who, GOALS, goal, goal.workflow_id)

    async def decide(self, who: Identity, decision: ApprovalDecision) -> str:
        """Publish an approval or denial of the request the workflow waits for."""
        request_id = await check_decision(self._store, decision)
        if decision.request_id not in (None, request_id):
            raise RefusedError(
                f"workflow {decision.workflow_id} now waits for {request_id}, not "
                f"{decision.request_id}: reload the page"
            )
        answered = decision.model_copy(update={"request_id": request_id})
        return await self._publish(who, APPROVALS, answered, decision.workflow_id)

    async def cancel(self, who: Identity, cancel: CancelWorkflow) -> str:
        """Pull the kill-switch on a running workflow."""
        await check_cancel(self._store, cancel.workflow_id)
        return await self._publish(who, CONTROL, cancel, cancel.workflow_id)

    async def rollback(self, who: Identity, rollback: RollbackWorkflow) -> str:
        """Roll a workflow back to an effective, non-final event."""
        await check_rollback(self._store, rollback.workflow_id, rollback.to_version)
        return await self._publish(who, CONTROL, rollback, rollback.workflow_id)

    async def fork(self, who: Identity, fork: ForkWorkflow) -> str:
        """Start a new workflow from another one's state at a version."""
        await check_fork(self._store, fork)
        return await self._publish(who, CONTROL, fork, fork.workflow_id)
