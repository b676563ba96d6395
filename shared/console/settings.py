"""The console's settings (prefix ``AGENTLOG_CONSOLE_``) and the ``Access`` they describe."""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.console.access import Access, ConsoleRole, User

__all__ = ["DEFAULT_PORT", "ConsoleSettings", "UserEntry", "load_console_settings"]

DEFAULT_PORT = 8780


class UserEntry(BaseModel):
    """One user in ``AGENTLOG_CONSOLE_USERS``: a role and a hash (``agentlog console
    hash-password``). A user without a hash can only come through the trusted header."""

    role: ConsoleRole = ConsoleRole.VIEWER
    password_hash: str | None = None


class ConsoleSettings(BaseSettings):
    """Where the console listens and who may sign in."""

    model_config = SettingsConfigDict(env_prefix="AGENTLOG_CONSOLE_", extra="ignore")

    #: Loopback unless set; any other address also needs sign-in configured.
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    #: JSON: ``{"alice": {"role": "operator", "password_hash": "scrypt$..."}}``.
    users: dict[str, UserEntry] = Field(default_factory=dict)
    #: A header a reverse proxy sets to the signed-in user (e.g. ``X-Forwarded-User``);
    #: honoured only when set. Only ever set it behind a proxy that strips it from clients.
    trusted_header: str | None = None
    #: Signs session cookies; default: random per process (restarting signs everyone out).
    secret: SecretStr | None = None
    session_hours: float = Field(default=12.0, gt=0)
    #: Mark cookies Secure (set it when the console is served over HTTPS).
    secure_cookies: bool = False

    @field_validator("users", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name in value:
                if not name or not str(name).replace("-", "").replace("_", "").isalnum():
                    raise ValueError(f"user name {name!r}: use letters, digits, - and _")
        return value

    @property
    def host_configured(self) -> bool:
        """Whether the host was chosen explicitly (the environment), not defaulted."""
        return "host" in self.model_fields_set or bool(os.environ.get("AGENTLOG_CONSOLE_HOST"))

    def access(self) -> Access:
        """The sign-in configuration the app enforces."""
        secret = self.secret.get_secret_value().encode() if self.secret else os.urandom(32)
        return Access(
            users={
                name: User(name, entry.role, entry.password_hash)
                for name, entry in self.users.items()
            },
            secret=secret,
            trusted_header=self.trusted_header,
            session_s=self.session_hours * 3600,
            secure_cookies=self.secure_cookies,
        )


def load_console_settings() -> ConsoleSettings:
    """Settings from the environment; a ValueError with one line when they are malformed."""
    try:
        return ConsoleSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"AGENTLOG_CONSOLE_{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise ValueError(problems) from None
