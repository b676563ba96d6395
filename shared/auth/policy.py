"""Who may send what: the authorisation rules applied after a signature verifies.

| message family          | signed by                    |
|-------------------------|------------------------------|
| ``agentlog.goal.*``     | an upstream system or operator (unsigned allowed only when the
|                         | operator turns ``require_signed_goals`` off) |
| ``agentlog.result.*``   | the agent named in the result |
| ``agentlog.control.*``  | an operator                  |
| ``agentlog.approval.*`` | an approver or operator      |
| ``agentlog.task.*``, ``agentlog.workflow.*`` | the supervisor |
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from shared.auth.keys import Principal, Role
from shared.auth.signing import SIGNATURE_HEADER, Verifier

__all__ = ["RULES", "Authenticator", "AuthorizationError"]

#: ce_type prefix → the roles that may sign it.
RULES: dict[str, frozenset[Role]] = {
    "agentlog.goal.": frozenset({Role.UPSTREAM, Role.OPERATOR}),
    "agentlog.result.": frozenset({Role.AGENT}),
    "agentlog.control.": frozenset({Role.OPERATOR}),
    "agentlog.approval.": frozenset({Role.OPERATOR, Role.APPROVER}),
    "agentlog.task.": frozenset({Role.SUPERVISOR}),
    "agentlog.workflow.": frozenset({Role.SUPERVISOR}),
}


class AuthorizationError(ValueError):
    """A correctly signed record its signer may not send (one line, for the DLQ)."""


class Authenticator:
    """Verifies a record's signer and that the signer may send this message."""

    def __init__(
        self,
        verifier: Verifier,
        *,
        unsigned_types: frozenset[str] = frozenset(),
        rules: Mapping[str, frozenset[Role]] | None = None,
    ) -> None:
        """``unsigned_types``: ce_types accepted without a signature (principal ``None``)."""
        self._verifier = verifier
        self._unsigned = unsigned_types
        self._rules = dict(RULES if rules is None else rules)

    def authenticate(
        self,
        headers: Mapping[str, bytes],
        key: bytes | None,
        value: bytes | None,
        *,
        ce_type: str,
        message: object,
        record_time: datetime,
        signed_time: datetime | None,
    ) -> Principal | None:
        """The verified signer, or None for an accepted unsigned type; raises when refused."""
        if SIGNATURE_HEADER not in headers and ce_type in self._unsigned:
            return None
        principal = self._verifier.verify(
            headers, key, value, record_time=record_time, signed_time=signed_time
        )
        roles = next(
            (roles for prefix, roles in self._rules.items() if ce_type.startswith(prefix)),
            frozenset[Role](),
        )
        if principal.role not in roles:
            raise AuthorizationError(f"{principal.name} ({principal.role}) may not send {ce_type}")
        claimed = getattr(message, "agent", None)
        if principal.role is Role.AGENT and claimed != principal.agent:
            raise AuthorizationError(
                f"{principal.name} signs for the {principal.agent} agent, not for {claimed}"
            )
        return principal
