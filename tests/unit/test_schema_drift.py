"""The committed JSON Schemas in schemas/json/ are exactly what the models generate."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.export import SCHEMA_DIR, check, main, render, write
from schemas.registry import MESSAGE_TYPES


def test_committed_schemas_match_models() -> None:
    """Every generated file is committed unchanged, and nothing stale is left beside them."""
    drifts = check(SCHEMA_DIR)
    assert not drifts, (
        "schemas/json/ is out of date with the pydantic models; run `make schemas` "
        "(python -m schemas.export) and commit the result:\n"
        + "\n".join(f"  {drift}" for drift in drifts)
    )


def test_export_is_deterministic() -> None:
    """Two renders give byte-identical files with sorted keys and a trailing newline."""
    first, second = render(), render()
    assert first == second
    assert all(content.endswith("}\n") for content in first.values())


def test_every_message_type_has_a_schema_file() -> None:
    """Each registered message type is exported under its own type name."""
    names = set(render())
    assert {f"{message_type}.json" for message_type in MESSAGE_TYPES} <= names


def test_check_reports_changed_missing_and_extra_files(tmp_path: Path) -> None:
    """A check against a tampered copy names the edited, deleted and stray files."""
    write(tmp_path)
    assert check(tmp_path) == []
    (tmp_path / "index.json").write_text("{}\n")
    (tmp_path / "agentlog.goal.submitted.v1.json").unlink()
    (tmp_path / "events" / "stray.json").write_text("{}\n")
    found = {(drift.path, drift.kind) for drift in check(tmp_path)}
    assert found == {
        ("index.json", "changed"),
        ("agentlog.goal.submitted.v1.json", "missing"),
        ("events/stray.json", "extra"),
    }


def test_write_removes_stale_files(tmp_path: Path) -> None:
    """Writing over a directory deletes schema files no model generates any more."""
    (tmp_path / "agentlog.old.thing.v1.json").write_text("{}\n")
    write(tmp_path)
    assert not (tmp_path / "agentlog.old.thing.v1.json").exists()
    assert check(tmp_path) == []


def test_check_flag_exits_1_and_names_drifted_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m schemas.export --check` exits 1, lists the files and says to run make."""
    write(tmp_path)
    (tmp_path / "index.json").unlink()
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "missing: index.json" in err
    assert "run `make schemas`" in err
    write(tmp_path)
    assert main(["--check", "--dir", str(tmp_path)]) == 0
