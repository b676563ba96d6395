"""Where a service serves its Prometheus metrics: ``AGENTLOG_METRICS_PORT`` and ``_HOST``.

The default port 0 asks the kernel for a free one on 127.0.0.1, so any number of replicas on
one machine never collide; the bound address goes into the service's registry file, where
``agentlog stack status`` shows it. A container sets a fixed port (docker-compose: 9464) and
host 0.0.0.0. A negative port or ``off`` serves nothing (the counters still count).
"""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MetricsSettings"]


class MetricsSettings(BaseSettings):
    """The metrics endpoint's address; read from the environment by each composition root."""

    model_config = SettingsConfigDict(env_prefix="AGENTLOG_METRICS_", extra="ignore")

    port: int | Literal["off"] = 0
    host: str = "127.0.0.1"

    @property
    def enabled(self) -> bool:
        """Whether the endpoint is served at all."""
        return self.port != "off" and self.port >= 0

    @property
    def bind_port(self) -> int:
        """The port to bind (0: any free one); only meaningful when ``enabled``."""
        return self.port if isinstance(self.port, int) and self.port >= 0 else 0
