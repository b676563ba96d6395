"""``Client``: the CLI's operations as an async Python API.

It calls the same read-side queries (``shared.readside.queries``) and the same operator
commands (``shared.commands``) as the CLI, so both answer and refuse alike: control messages
are signed as the ``operator`` principal, and a request the recorded state rules out raises
``RefusedError`` before anything is published.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self
from uuid import uuid4

from schemas.messages import (
    CancelWorkflow,
    CompletionEvent,
    ForkWorkflow,
    GoalSubmitted,
    RollbackWorkflow,
)
from shared.commands import (
    check_cancel,
    check_fork,
    check_rollback,
    open_store,
    publish_cancel,
    publish_fork,
    publish_goal,
    publish_rollback,
    wait_for_completion,
)
from shared.eventstore import EventStore
from shared.readside import queries
from shared.settings import Settings

__all__ = ["Client"]


class Client:
    """An async context manager over one event-store connection; publishes open a short-lived
    producer each, like the CLI's.

    ``settings`` default to the environment (``AGENTLOG_*``) and the nearest embedded stack;
    ``store`` replaces the Postgres store (tests pass an ``InMemoryEventStore``).
    """

    def __init__(
        self, settings: Settings | None = None, *, store: EventStore | None = None
    ) -> None:
        self._settings = settings or Settings()
        self._owns_store = store is None
        self._store = store

    @property
    def store(self) -> EventStore:
        """The event store the client reads."""
        if self._store is None:
            raise RuntimeError("the client is not started: use `async with Client() as client`")
        return self._store

    async def start(self) -> None:
        """Connect to the event store."""
        if self._store is None:
            self._store = open_store(self._settings)
        if self._owns_store:
            await self._store.start()

    async def stop(self) -> None:
        """Close the connection."""
        if self._store is not None and self._owns_store:
            await self._store.stop()
            self._store = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- writes: signed messages, checked against the store first ------------------------

    async def submit(
        self,
        goal: str,
        constraints: Sequence[str] = (),
        workflow_id: str | None = None,
        max_revisions: int | None = None,
    ) -> str:
        """Publish a goal; returns the workflow id."""
        fields: dict[str, Any] = {"goal": goal, "constraints": list(constraints)}
        if workflow_id is not None:
            fields["workflow_id"] = workflow_id
        if max_revisions is not None:
            fields["max_revisions"] = max_revisions
        message = GoalSubmitted(**fields)
        await publish_goal(self._settings, message)
        return message.workflow_id

    async def cancel(self, workflow_id: str, reason: str = "cancelled by operator") -> None:
        """Stop a running workflow; RefusedError for an unknown or finished one."""
        message = CancelWorkflow(workflow_id=workflow_id, reason=reason)
        await check_cancel(self.store, workflow_id)
        await publish_cancel(self._settings, message)

    async def rollback(self, workflow_id: str, to_version: int, reason: str) -> str:
        """Roll a workflow back to ``to_version``; RefusedError when that is no valid target.

        Returns the request's event id: pass it as ``caused_by`` to ``wait_for_completion`` to
        wait for the rolled-back run's outcome.
        """
        message = RollbackWorkflow(workflow_id=workflow_id, to_version=to_version, reason=reason)
        await check_rollback(self.store, workflow_id, to_version)
        return await publish_rollback(self._settings, message)

    async def fork(
        self,
        parent: str,
        at_version: int,
        workflow_id: str | None = None,
        constraints: Sequence[str] | None = None,
        max_revisions: int | None = None,
        reason: str = "",
    ) -> str:
        """Start a new workflow from ``parent``'s state at ``at_version``; returns its id.

        ``constraints`` replace the parent's when given. RefusedError when the parent cannot
        be forked there or the new id is taken.
        """
        message = ForkWorkflow(
            workflow_id=workflow_id or f"wf-{uuid4().hex}",
            parent_workflow_id=parent,
            at_version=at_version,
            constraints=list(constraints) if constraints is not None else None,
            max_revisions=max_revisions,
            reason=reason,
        )
        await check_fork(self.store, message)
        await publish_fork(self._settings, message)
        return message.workflow_id

    # --- reads ---------------------------------------------------------------------------

    async def status(self, workflow_id: str) -> dict[str, Any]:
        """The workflow as it stands (what `agentlog status --json` prints)."""
        state = await queries.read_state(self.store, workflow_id)
        if state.version == 0:
            raise queries.NotFoundError(f"no workflow {workflow_id!r}")
        return queries.status_summary(state)

    async def state_at(self, workflow_id: str, version: int) -> dict[str, Any]:
        """The workflow as it stood right after event ``version``."""
        return await queries.state_at(self.store, workflow_id, version)

    async def history(self, workflow_id: str, full: bool = False) -> list[dict[str, object]]:
        """One dict per event (what `agentlog history --json [--full]` prints)."""
        records = await self.store.read(workflow_id)
        if not records:
            raise queries.NotFoundError(f"no workflow {workflow_id!r}")
        return [row.as_dict() for row in queries.timeline(records, full=full)]

    async def diff(self, workflow_a: str, workflow_b: str) -> queries.Diff:
        """Where two workflows' effective histories part, and what differs after."""
        records = []
        for workflow_id in (workflow_a, workflow_b):
            records.append(await self.store.read(workflow_id))
            if not records[-1]:
                raise queries.NotFoundError(f"no workflow {workflow_id!r}")
        return queries.diff(records[0], records[1])

    async def wait_for_completion(
        self,
        workflow_id: str,
        timeout_s: float = 120.0,
        after_run: int = 0,
        caused_by: str | None = None,
    ) -> CompletionEvent:
        """The completion of the workflow's first run numbered above ``after_run`` (and ending
        after the events ``caused_by`` caused); WaitTimeoutError after ``timeout_s``."""
        return await wait_for_completion(
            self.store, workflow_id, timeout_s, after_run=after_run, caused_by=caused_by
        )
