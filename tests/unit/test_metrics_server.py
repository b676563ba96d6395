"""The /metrics endpoint: served from the event loop on the address the settings name."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.telemetry.metrics import Metrics
from shared.telemetry.metrics_server import MetricsServer
from shared.telemetry.metrics_settings import MetricsSettings


async def test_a_scrape_reads_the_process_registry() -> None:
    """GET /metrics on the ephemeral port returns the registry in the text format."""
    metrics = Metrics()
    metrics.steps.duration.labels("writer", "ok").observe(0.2)
    async with MetricsServer(metrics.registry) as server, httpx.AsyncClient() as client:
        assert server.url is not None
        assert server.url.startswith("http://127.0.0.1:")
        assert not server.url.endswith(":0/metrics")
        response = await client.get(server.url)
        missing = await client.get(server.url.replace("/metrics", "/nope"))
        posted = await client.post(server.url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    [count] = [
        s.value
        for s in families["agentlog_step_duration_seconds"].samples
        if s.name.endswith("_count")
    ]
    assert count == 1
    assert missing.status_code == 404
    assert posted.status_code == 405
    assert server.url is None  # stopped


async def test_two_servers_on_port_zero_never_collide() -> None:
    """Replicas on one host each get their own port."""
    first, second = MetricsServer(Metrics().registry), MetricsServer(Metrics().registry)
    async with first, second:
        assert first.url is not None
        assert second.url is not None
        assert first.url != second.url


@pytest.mark.parametrize(
    ("port", "enabled", "bound"),
    [("0", True, 0), ("9464", True, 9464), ("off", False, 0), ("-1", False, 0)],
)
def test_settings_read_port_and_off(
    monkeypatch: pytest.MonkeyPatch, port: str, enabled: bool, bound: int
) -> None:
    """AGENTLOG_METRICS_PORT takes a port, 0 for any, and off or a negative number to disable."""
    monkeypatch.setenv("AGENTLOG_METRICS_PORT", port)
    settings = MetricsSettings()
    assert settings.enabled is enabled
    assert settings.bind_port == bound
    assert settings.host == "127.0.0.1"


async def test_a_disabled_endpoint_binds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the port off the server starts and stops without listening, and has no url."""
    monkeypatch.setenv("AGENTLOG_METRICS_PORT", "off")
    async with MetricsServer.from_settings(Metrics().registry) as server:
        assert server.url is None
