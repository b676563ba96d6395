"""What Apache Kafka's broker needs on this machine: Java 17+, and its jars fetched by Maven.

The jars are resolved once from ``deploy/kafka/pom.xml`` into a user-level cache,
``${XDG_CACHE_HOME:-~/.cache}/agentlog/kafka-<version>-<hash of the pom>/``, so every stack of
every checkout shares them and a changed pom never reuses a stale folder. Maven keeps its own
copy in ``~/.m2``. No Docker and no tarball download: Maven Central is what these machines reach.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.stack.errors import StackError

__all__ = [
    "KAFKA_POM",
    "MIN_JAVA",
    "find_java",
    "jar_cache_dir",
    "jars_cached",
    "kafka_version",
    "resolve_jars",
]

#: The pom whose dependencies are the broker's classpath (a source checkout's ``deploy/``).
KAFKA_POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"
#: Kafka 4.x brokers need Java 17 or newer.
MIN_JAVA = 17

_USE_TANSU = "or use the default embedded broker (`--broker tansu`)"
_INSTALL_JAVA = (
    "install Java 17+ (e.g. `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME, "
    + _USE_TANSU
)
_RESOLVE_TIMEOUT_S = 900.0
_log = logging.getLogger(__name__)


def _read_pom(pom: Path) -> str:
    try:
        return pom.read_text()
    except OSError as exc:
        raise StackError(
            f"the kafka broker needs {pom} (a source checkout of agentlog): {exc.strerror}"
        ) from None


def kafka_version(pom: Path = KAFKA_POM) -> str:
    """The Kafka version the pom resolves (its ``kafka.version`` property)."""
    found = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", _read_pom(pom))
    if found is None:
        raise StackError(f"{pom} names no <kafka.version>")
    return found.group(1)


def jar_cache_dir(pom: Path = KAFKA_POM) -> Path:
    """Where the jars for this pom are (or will be) cached."""
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no home directory (a bare container)
            raise StackError(
                "no cache folder for Apache Kafka's jars: set XDG_CACHE_HOME"
            ) from None
    digest = hashlib.sha256(_read_pom(pom).encode()).hexdigest()[:8]
    return Path(base) / "agentlog" / f"kafka-{kafka_version(pom)}-{digest}"


def jars_cached(pom: Path = KAFKA_POM) -> bool:
    """Whether the jars for this pom are already resolved (so no Maven run is needed)."""
    try:
        return (jar_cache_dir(pom) / f"kafka_2.13-{kafka_version(pom)}.jar").is_file()
    except StackError:
        return False


def find_java() -> str:
    """The ``java`` to run the broker with (``$JAVA_HOME/bin/java``, else PATH), checked to be
    Java 17 or newer; a ``StackError`` naming what is missing otherwise."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if java is None or not os.access(java, os.X_OK):
        where = f"JAVA_HOME={home} has no bin/java" if home else "`java` is not on PATH"
        raise StackError(f"the kafka broker needs Java {MIN_JAVA}+, but {where}: {_INSTALL_JAVA}")
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise StackError(f"could not run {java} -version: {exc}") from None
    major = _java_major(out.stderr + out.stdout)
    if major is None or major < MIN_JAVA:
        found = f"Java {major}" if major is not None else "no Java version"
        raise StackError(
            f"the kafka broker needs Java {MIN_JAVA}+, but {java} reports {found}: {_INSTALL_JAVA}"
        )
    return java


def _java_major(version_output: str) -> int | None:
    # `openjdk version "17.0.15"`, `java version "1.8.0_402"`, `openjdk version "25"`.
    found = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if found is None:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def resolve_jars(pom: Path = KAFKA_POM, *, log: Path) -> Path:
    """The folder of the broker's jars, fetched with Maven the first time (its output goes to
    ``log``). Safe to call from several processes at once: one resolves, the others wait."""
    target = jar_cache_dir(pom)
    if jars_cached(pom):
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            f"the kafka broker's jars are not cached in {target} and Maven (`mvn`) is not on "
            f"PATH to fetch them: install Maven (e.g. `apt-get install maven`) {_USE_TANSU}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / f"{target.name}.lock"):
        if jars_cached(pom):  # another process resolved them while we waited
            return target
        for leftover in target.parent.glob(f"{target.name}.partial-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
        # A warning so that the CLI shows it: the first `up` pauses here for a while.
        _log.warning(
            "fetching Apache Kafka %s's jars with Maven into %s (once; 10-30 s)",
            kafka_version(pom),
            target,
        )
        _run_maven(mvn, pom, partial, log)
        # Whole or not at all: a folder under the final name is always complete.
        partial.rename(target)
    return target


def _run_maven(mvn: str, pom: Path, output: Path, log: Path) -> None:
    argv = [
        mvn,
        "-B",
        "-q",
        "-Dstyle.color=never",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={output}",
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        start = out.tell()
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=_RESOLVE_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise StackError(
                f"Maven did not fetch Apache Kafka's jars within {_RESOLVE_TIMEOUT_S:.0f} s"
                f" (its output: {log})"
            ) from None
        except OSError as exc:
            raise StackError(f"could not run {mvn}: {exc}") from None
    if done.returncode != 0:
        raise StackError(
            f"Maven could not fetch Apache Kafka {kafka_version(pom)}'s jars"
            f" ({_first_error(log, start)}; full output: {log})"
        )


def _first_error(log: Path, start: int) -> str:
    # Only this run's output: the log keeps earlier attempts too.
    try:
        with log.open("rb") as out:
            out.seek(start)
            lines = out.read().decode(errors="replace").splitlines()
    except OSError:
        return "no output"
    # Maven colours its output even in batch mode; "-> [Help 1]" points at a wiki page.
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in lines]
    errors = [
        line.split("[ERROR]", 1)[1].split(" -> [Help")[0].strip()
        for line in plain
        if "[ERROR]" in line
    ]
    return next((e for e in errors if e), plain[-1].strip() if plain else "no output")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
