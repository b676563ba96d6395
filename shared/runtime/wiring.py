"""What every composition root builds the same way: a signing bus, an authenticator, and one
clear line (not a traceback) when the process is misconfigured."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence

from shared.auth import Authenticator, CredentialError, build_authenticator, build_signer
from shared.settings import Settings, StackNotConfiguredError
from shared.transport.kafka import KafkaBus

__all__ = ["ConfigurationError", "authenticator_for", "exit_on_misconfiguration", "kafka_bus"]

_log = logging.getLogger("agentlog")

#: Errors a user fixes in their settings; a service reports them in one line and exits 2.
ConfigurationError = (StackNotConfiguredError, CredentialError)


def kafka_bus(
    settings: Settings,
    *,
    service: str,
    topics: Sequence[str],
    principal: str | None = None,
    client_id: str | None = None,
) -> KafkaBus:
    """A KafkaBus that signs everything it publishes as ``principal`` (default: ``service``)."""
    signer = build_signer(settings.auth, settings.state_dir, principal or service)
    return KafkaBus(
        settings.require_kafka_bootstrap(),
        service=service,
        tuning=settings.kafka,
        topics=list(topics),
        partitions=settings.topic_partitions,
        signer=signer,
        max_record_bytes=settings.max_record_bytes,
        client_id=client_id,
    )


def authenticator_for(settings: Settings) -> Authenticator:
    """The keyring check every consumer of workflow-changing topics applies."""
    return build_authenticator(settings.auth, settings.state_dir)


def exit_on_misconfiguration(main: Callable[[], None], service: str) -> Callable[[], None]:
    """Run ``main``; a configuration error ends the process with one line and exit code 2."""

    def guarded() -> None:
        try:
            main()
        except ConfigurationError as exc:
            # configure_logging ran first, so this is the one line on stderr.
            _log.error("%s cannot start: %s", service, exc)
            sys.exit(2)

    return guarded
