"""Apache Kafka as the stack's broker: one KRaft node that is broker and controller at once.

The JVM runs as a daemon like Tansu does, with everything under ``<state dir>/kafka/``: the
generated ``server.properties`` and ``log4j2.properties`` and the data (``data/``). Unlike
Tansu it keeps its data on disk: topics, committed offsets and groups survive a restart, a crash
and ``stack down``. Its output goes to ``<state dir>/kafka.log``, its record to
``<state dir>/kafka.pid``. The jars come from Maven Central once (:mod:`shared.stack.kafka_jars`).
"""

from __future__ import annotations

import base64
import re
import socket
import struct
import subprocess
import uuid
from pathlib import Path

from shared.stack.daemon import Daemon
from shared.stack.errors import StackError, log_tail
from shared.stack.kafka_jars import KAFKA_POM, find_java, kafka_version, resolve_jars
from shared.stack.process import find_free_port, wait_until
from shared.stack.state import LOOPBACK, ProcessRecord

__all__ = ["EmbeddedKafka", "kafka_answers", "server_properties"]

# Cold JVM start plus KRaft bootstrap: 3-5 s on a quiet 2-core machine, several times that
# under load (docs/operations.md has the measurements).
_START_TIMEOUT_S = 120.0
_FORMAT_TIMEOUT_S = 120.0
# A clean shutdown (SIGTERM) flushes and marks the logs clean, so the next start skips recovery.
_STOP_TIMEOUT_S = 20.0
_MAIN_CLASS = "kafka.Kafka"
_STORAGE_TOOL = "kafka.tools.StorageTool"
# Small heap, one client-side compiler: this is a development broker on a laptop, not a
# production one; start time and memory matter more than peak throughput.
_JVM_OPTIONS = (
    "-Xms32m",
    "-Xmx384m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
_API_VERSIONS = 18

# The logs stay readable: startup and errors, not a line per partition and request.
_LOG4J = """\
rootLogger.level=INFO
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=WARN
logger.apache.name=org.apache.kafka
logger.apache.level=WARN
logger.state.name=state.change.logger
logger.state.level=WARN
logger.started.name=kafka.server.KafkaRaftServer
logger.started.level=INFO
logger.broker.name=kafka.server.BrokerServer
logger.broker.level=INFO
"""


def server_properties(port: int, controller_port: int, data: Path) -> str:
    """The broker's ``server.properties``: one KRaft node on loopback, data in ``data``."""
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        # A static quorum: the voter set comes from this file, so the controller may move to
        # another port after a restart without touching the stored metadata.
        "controller.quorum.voters": f"1@{LOOPBACK}:{controller_port}",
        "listeners": f"PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data),
        # As Tansu does: a topic that is used before it is created gets 4 partitions.
        "num.partitions": "4",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # agentlog's clients default to a 2 s session (shared.settings.KafkaTuning); Kafka
        # refuses anything below 6 s unless told otherwise.
        "group.min.session.timeout.ms": "1000",
        # After a crash the restarted controller waits out the old broker session before the
        # broker may register again: 9 s by default, 3 s here.
        "broker.session.timeout.ms": "3000",
        "broker.heartbeat.interval.ms": "500",
        # The compaction buffer is allocated at startup (128 MB by default): most of the heap.
        "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _cluster_id() -> str:
    """Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Like Kafka's own Uuid.randomUuid(): one starting with "-" reads as an option.
        if not text.startswith("-"):
            return text


def kafka_answers(port: int, timeout: float = 1.0) -> bool:
    """Whether a Kafka broker on ``port`` answers an ApiVersions request without error.

    A connect alone proves nothing: Kafka binds its port early, but answers requests only once
    it has caught up with its metadata and is unfenced, i.e. ready for clients.
    """
    client = b"agentlog-stack"
    request = struct.pack(">hhih", _API_VERSIONS, 0, 1, len(client)) + client
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            head = _receive(sock, 10)
    except OSError:
        return False
    _size, correlation, error = struct.unpack(">iih", head)
    return bool(correlation == 1 and error == 0)


def _receive(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed before answering")
        data += chunk
    return data


class EmbeddedKafka:
    """One single-node Apache Kafka (KRaft) per state dir, data in ``kafka/data``, on record
    in ``kafka.pid``."""

    def __init__(self, state_dir: Path, pom: Path = KAFKA_POM) -> None:
        self.log = state_dir / "kafka.log"
        self.daemon = Daemon(state_dir, "kafka", self.log)
        self.home = state_dir / "kafka"
        self.data = self.home / "data"
        self._pom = pom
        self._prepared: tuple[str, Path] | None = None  # java, jars

    @property
    def name(self) -> str:
        """What runs, for people: "Apache Kafka <version>"."""
        try:
            return f"Apache Kafka {kafka_version(self._pom)}"
        except StackError:
            return "Apache Kafka"

    def prepare(self) -> None:
        """Check for Java 17+ and fetch the jars with Maven unless they are cached; a
        ``StackError`` naming what is missing (and how to get it) otherwise."""
        self._requirements()

    def start(self, port: int) -> ProcessRecord:
        """Start on ``port`` (formatting the storage the first time) and wait until it answers
        requests; fetches the jars with Maven first if they are not cached yet."""
        java, jars = self._requirements()
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "server.properties"
        controller_port = self._controller_port(config, avoid=port)
        config.write_text(server_properties(port, controller_port, self.data))
        log4j = self.home / "log4j2.properties"
        log4j.write_text(_LOG4J)
        base = [java, *_JVM_OPTIONS, f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{jars}/*"]
        if not (self.data / "meta.properties").is_file():
            self._format([*base, _STORAGE_TOOL, "format", "-t", _cluster_id(), "-c", str(config)])
        record = self.daemon.spawn([*base, _MAIN_CLASS, str(config)], port)
        up = wait_until(
            lambda: not self.alive(record) or kafka_answers(port),
            _START_TIMEOUT_S,
            interval=0.1,
        )
        if not up or not self.alive(record):
            self.stop(record)
            raise StackError(f"kafka did not come up on port {port}:\n{log_tail(self.log)}")
        return record

    def recorded(self) -> ProcessRecord | None:
        """The broker on record in this state dir, running or not."""
        return self.daemon.recorded()

    def alive(self, record: ProcessRecord) -> bool:
        """Whether the recorded broker still runs (not merely a reused pid)."""
        return self.daemon.alive(record)

    def is_ready(self, record: ProcessRecord) -> bool:
        """Whether the recorded broker is alive and answers Kafka requests."""
        return self.alive(record) and kafka_answers(record.port)

    def stop(self, record: ProcessRecord) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL; a no-op when the process is already gone."""
        self.daemon.stop(record, timeout=_STOP_TIMEOUT_S)

    def _requirements(self) -> tuple[str, Path]:
        if self._prepared is None:
            self._prepared = (find_java(), resolve_jars(self._pom, log=self.home / "maven.log"))
        return self._prepared

    def _controller_port(self, config: Path, avoid: int) -> int:
        # The previous controller port when it is free: the log then reads the same each time.
        try:
            found = re.search(r"CONTROLLER://[^:]+:(\d+)", config.read_text())
        except OSError:
            found = None
        preferred = int(found.group(1)) if found else None
        port = find_free_port(preferred if preferred != avoid else None)
        while port == avoid:  # the broker's port is free too until the broker binds it
            port = find_free_port()
        return port

    def _format(self, argv: list[str]) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            try:
                done = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=_FORMAT_TIMEOUT_S,
                    check=False,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                raise StackError(f"could not format kafka's storage: {exc}") from None
        if done.returncode != 0:
            raise StackError(f"could not format kafka's storage:\n{log_tail(self.log)}")
