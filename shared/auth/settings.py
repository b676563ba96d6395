"""Where a process finds its signing key and the keyring, from settings.

Defaults follow the embedded stack: ``<state dir>/keys/<principal>.key`` and
``<state dir>/keys/keyring.json``, which ``agentlog stack up`` generates. In production set
``AGENTLOG_AUTH_SIGNING_KEY`` (PEM or base64 seed, e.g. from a secret store) or
``AGENTLOG_AUTH_KEY_FILE``, and ``AGENTLOG_AUTH_KEYRING_FILE`` on the verifiers.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.auth.keys import (
    KEYRING_FILE,
    Keyring,
    load_private_key,
    private_key_from_text,
    private_key_texts,
)
from shared.auth.policy import Authenticator
from shared.auth.signing import Signer, Verifier
from shared.runtime.redaction import register_secret

__all__ = ["AuthSettings", "build_authenticator", "build_signer"]

GOAL_TYPES = frozenset({"agentlog.goal.submitted.v1"})


class AuthSettings(BaseSettings):
    """Message authentication (env prefix ``AGENTLOG_AUTH_``)."""

    model_config = SettingsConfigDict(env_prefix="AGENTLOG_AUTH_", extra="ignore")

    #: Folder with ``<principal>.key`` files and ``keyring.json``; default ``<state dir>/keys``.
    keys_dir: Path | None = None
    #: Who this process signs as; default: the service's own name (the CLI: ``operator``).
    principal: str | None = None
    #: The private key itself (wins over ``key_file``); never logged.
    signing_key: SecretStr | None = None
    key_file: Path | None = None
    keyring_file: Path | None = None
    #: Refuse unsigned goals. On by default: a goal spends model budget, so anyone able to
    #: write to ``agentlog.goals`` must not be able to start work anonymously.
    require_signed_goals: bool = True
    #: How far a signature's time may be from its record's timestamp (replay window).
    max_skew_s: float = 300.0

    def keys_folder(self, state_dir: Path) -> Path:
        """The folder keys are read from by default."""
        return self.keys_dir or state_dir / "keys"


def build_signer(auth: AuthSettings, state_dir: Path, default_principal: str) -> Signer:
    """This process's signer; raises ``CredentialError`` (one line) when it has no key."""
    principal = auth.principal or default_principal
    if auth.signing_key is not None:
        key = private_key_from_text(auth.signing_key.get_secret_value())
    else:
        key = load_private_key(auth.key_file or auth.keys_folder(state_dir) / f"{principal}.key")
    # Whatever text a dependency puts in an exception, the key material never reaches a log.
    for secret in private_key_texts(key):
        register_secret(secret)
    return Signer(principal, key)


def build_authenticator(auth: AuthSettings, state_dir: Path) -> Authenticator:
    """The verifier a consumer applies; raises ``CredentialError`` without a keyring."""
    keyring = Keyring.load(auth.keyring_file or auth.keys_folder(state_dir) / KEYRING_FILE)
    unsigned = frozenset() if auth.require_signed_goals else GOAL_TYPES
    return Authenticator(Verifier(keyring, max_skew_s=auth.max_skew_s), unsigned_types=unsigned)
