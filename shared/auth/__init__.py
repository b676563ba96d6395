"""Message authentication: Ed25519 signatures on records, a keyring, and who may send what."""

from shared.auth.keys import (
    DEVELOPMENT_PRINCIPALS,
    CredentialError,
    Keyring,
    Principal,
    Role,
    ensure_development_keys,
)
from shared.auth.policy import Authenticator, AuthorizationError
from shared.auth.settings import AuthSettings, build_authenticator, build_signer
from shared.auth.signing import SIGNATURE_HEADER, AuthenticationError, Signer, Verifier

__all__ = [
    "DEVELOPMENT_PRINCIPALS",
    "SIGNATURE_HEADER",
    "AuthSettings",
    "AuthenticationError",
    "Authenticator",
    "AuthorizationError",
    "CredentialError",
    "Keyring",
    "Principal",
    "Role",
    "Signer",
    "Verifier",
    "build_authenticator",
    "build_signer",
    "ensure_development_keys",
]
