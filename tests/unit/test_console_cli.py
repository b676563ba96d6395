"""`agentlog console` and its helpers, run through the CLI: the listening rule's refusal,
password hashes, and a user's key added to the keyring without dropping anyone else's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.auth import Keyring, Role, ensure_development_keys
from shared.auth.keys import KEYRING_FILE
from shared.cli.app import app
from shared.console.access import verify_password

runner = CliRunner()


def test_a_public_address_without_sign_in_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """AGENTLOG_CONSOLE_HOST=0.0.0.0 with no users: one line, exit 2, nothing served."""
    monkeypatch.setenv("AGENTLOG_CONSOLE_HOST", "0.0.0.0")
    monkeypatch.delenv("AGENTLOG_CONSOLE_USERS", raising=False)
    monkeypatch.delenv("AGENTLOG_CONSOLE_TRUSTED_HEADER", raising=False)
    result = runner.invoke(app, ["console"])
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0 without sign-in" in result.output


def test_malformed_users_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A users setting that is not the expected JSON is named, exit 2."""
    monkeypatch.setenv("AGENTLOG_CONSOLE_USERS", '{"alice": {"role": "admin"}}')
    result = runner.invoke(app, ["console"])
    assert result.exit_code == 2
    assert "AGENTLOG_CONSOLE_USERS" in result.output


def test_hash_password_prints_a_hash_that_verifies() -> None:
    """One line on stdin in, an scrypt hash out; short passwords are refused."""
    result = runner.invoke(app, ["console", "hash-password"], input="a long passphrase\n")
    assert result.exit_code == 0
    assert verify_password("a long passphrase", result.output.strip())
    short = runner.invoke(app, ["console", "hash-password"], input="short\n")
    assert short.exit_code == 2


def test_add_user_trusts_the_new_key_and_keeps_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator user gets a key and a keyring entry; development principals stay trusted."""
    ensure_development_keys(tmp_path)
    monkeypatch.setenv("AGENTLOG_AUTH_KEYS_DIR", str(tmp_path))
    command = ["console", "add-user", "alice", "--role", "operator"]
    result = runner.invoke(app, command, input="alice-password\n")
    assert result.exit_code == 0, result.output
    entry = json.loads(result.output.strip().splitlines()[-1])
    assert entry["alice"]["role"] == "operator"
    assert verify_password("alice-password", entry["alice"]["password_hash"])
    keyring = Keyring.load(tmp_path / KEYRING_FILE)
    alice, operator = keyring.get("alice"), keyring.get("operator")
    assert alice is not None
    assert alice.principal.role is Role.OPERATOR
    assert operator is not None
    again = runner.invoke(app, [*command[:3], "--role", "approver"], input="alice-password\n")
    assert again.exit_code == 0
    approver = Keyring.load(tmp_path / KEYRING_FILE).get("alice")
    assert approver is not None
    assert approver.principal.role is Role.APPROVER
    assert (tmp_path / "alice.key").stat().st_mode & 0o077 == 0
