"""The CLI's handling of bad input and missing configuration (no backend needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.cli.app import app

runner = CliRunner()


@pytest.fixture
def no_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AGENTLOG_* connection variables and no embedded stack state in the working dir."""
    monkeypatch.delenv("AGENTLOG_DATABASE_URL", raising=False)
    monkeypatch.delenv("AGENTLOG_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.chdir(tmp_path)


def test_too_short_goal_is_refused_with_a_clear_message(no_backend: None) -> None:
    """A goal under three characters is rejected before anything is published."""
    result = runner.invoke(app, ["submit", "hi"])
    assert result.exit_code == 2
    assert "invalid goal" in result.output
    assert "at least 3 characters" in result.output


def test_bad_workflow_id_is_refused(no_backend: None) -> None:
    """A workflow id outside the allowed characters is rejected with the pattern it must match."""
    result = runner.invoke(app, ["submit", "a real goal", "--workflow-id", "bad id!"])
    assert result.exit_code == 2
    assert "workflow_id" in result.output


def test_missing_backend_names_the_fix(no_backend: None) -> None:
    """Without a database configured, status says how to configure one instead of crashing."""
    result = runner.invoke(app, ["status", "wf-1"])
    assert result.exit_code == 2
    assert "AGENTLOG_DATABASE_URL" in result.output
    assert "agentlog stack up" in result.output
