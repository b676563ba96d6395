"""`agentlog stack up|down|status`: the embedded Postgres and Kafka-protocol broker.

Connection settings go to stdout as ``AGENTLOG_...=`` lines (and one ``export`` line) that a
shell can ``eval``; everything meant for people goes to stderr, so
``eval "$(agentlog stack status)"`` is safe.

Which stack: ``AGENTLOG_STATE_DIR`` if set, else the nearest ``.agentlog/`` with a running stack
in the working directory or above it, else the one the last ``stack up`` started (recorded in
``${XDG_STATE_HOME:-~/.local/state}/agentlog/current-stack``). ``stack up`` itself never follows
that pointer: run elsewhere, it starts a stack in ``./.agentlog``.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from shared.runtime.registry import (
    STALE_AFTER_S,
    ServiceRecord,
    StoppedService,
    list_services,
    live_process,
)
from shared.settings import (
    STATE_DIR_NAME,
    Settings,
    clear_stack_pointer,
    find_state_dir,
    write_stack_pointer,
)
from shared.stack import ComponentStatus, EmbeddedStack, StackError, StackInfo
from shared.stack.state import BrokerKind

__all__ = [
    "describe_service",
    "load_cli_settings",
    "say",
    "stack_app",
    "start_stack",
    "stop_stack",
]

stack_app = typer.Typer(
    help="Start and stop the embedded Postgres and Kafka-protocol broker.",
    no_args_is_help=True,
    # Plain help: the rich renderer labels every flag (even --help) with a bogus "<bool>".
    rich_markup_mode=None,
)

_BROKER_DATA_LOST = (
    "warning: the broker had stopped and was restarted. It keeps data in memory only, so its "
    "topics, offsets and consumer groups are gone: restart the services, which re-create their "
    "topics and resume from the event store."
)


def load_cli_settings() -> Settings:
    """Settings from the environment; a malformed AGENTLOG_* variable is one line, exit 2."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"AGENTLOG_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
            # A default computed from a field that failed is not a second problem.
            if e["type"] != "default_factory_not_called"
        )
        say(f"error: invalid setting: {problems}")
        raise typer.Exit(2) from None


def _stack() -> EmbeddedStack:
    return EmbeddedStack(load_cli_settings().state_dir)


def _stack_to_start(broker: BrokerKind | None) -> EmbeddedStack:
    # Never the pointer: `up` in a new project must not silently reuse another project's stack.
    settings = load_cli_settings()
    # Unasked, `up` keeps the broker that runs (else Tansu); the option beats the setting.
    if broker is None and "stack_broker" in settings.model_fields_set:
        broker = BrokerKind(settings.stack_broker)
    if "state_dir" in settings.model_fields_set:
        return EmbeddedStack(settings.state_dir, broker=broker)
    state_dir = find_state_dir(use_pointer=False) or Path.cwd() / STATE_DIR_NAME
    return EmbeddedStack(state_dir, broker=broker)


def say(message: str) -> None:
    """A line for people, on stderr (stdout is for `eval`)."""
    typer.echo(message, err=True)


def _print_settings(database_url: str, kafka_bootstrap: str) -> None:
    # Plain NAME=value lines stay easy to grep and parse; the last line makes `eval` export
    # them, so commands started from that shell see them too.
    typer.echo(f"AGENTLOG_DATABASE_URL={shlex.quote(database_url)}")
    typer.echo(f"AGENTLOG_KAFKA_BOOTSTRAP={shlex.quote(kafka_bootstrap)}")
    typer.echo("export AGENTLOG_DATABASE_URL AGENTLOG_KAFKA_BOOTSTRAP")


def _describe(name: str, status: ComponentStatus) -> str:
    where = f" (pid {status.pid}, port {status.port})" if status.pid is not None else ""
    state = "healthy" if status.healthy else "DOWN"
    return f"{name:<9} {state}: {status.detail}{where}"


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _health_summary(health: dict[str, Any] | Any) -> list[str]:
    """Readable lines for a health dict; empty collections say nothing went wrong."""
    lines = []
    for key, value in dict(health).items():
        if isinstance(value, dict):
            for where, detail in value.items():
                if isinstance(detail, dict):
                    reason = detail.get("reason", "")
                    since = detail.get("for_s")
                    extra = ", ".join(
                        f"{k}={v}" for k, v in detail.items() if k not in ("reason", "for_s")
                    )
                    text = f"{key.replace('_', ' ')}: {where}"
                    text += f" for {since}s" if since is not None else ""
                    text += f": {reason}" if reason else ""
                    lines.append(text + (f" ({extra})" if extra else ""))
                else:
                    lines.append(f"{key.replace('_', ' ')}: {where}: {detail}")
        elif isinstance(value, list | tuple):
            if value:
                lines.append(f"{key.replace('_', ' ')}: {', '.join(str(v) for v in value)}")
        else:
            lines.append(f"{key.replace('_', ' ')}: {value}")
    return lines


def describe_service(record: ServiceRecord) -> list[str]:
    """A registered service as `stack status` prints it: one line, then its health."""
    head = f"service   {record.service:<10} "
    if live_process(record) is None:
        return [f"{head}GONE: pid {record.pid} exited without deregistering (stack down clears)"]
    line = f"{head}{record.state}: pid {record.pid}, up {_duration(record.uptime_s)}"
    if record.heartbeat_age_s > STALE_AFTER_S:
        line += f", NO HEARTBEAT for {_duration(record.heartbeat_age_s)} (hung?)"
    if record.log:
        line += f", log {record.log}"
    if record.metrics:
        line += f", metrics {record.metrics}"
    return [line, *(f"          {detail}" for detail in _health_summary(record.health))]


def _service_json(record: ServiceRecord) -> dict[str, Any]:
    return {
        "service": record.service,
        "pid": record.pid,
        "alive": live_process(record) is not None,
        "state": record.state,
        "uptime_s": round(record.uptime_s, 1),
        "heartbeat_age_s": round(record.heartbeat_age_s, 1),
        "log": record.log,
        "metrics": record.metrics,
        "health": dict(record.health),
    }


def start_stack(broker: BrokerKind | None = None) -> tuple[EmbeddedStack, StackInfo]:
    """`stack up`'s work and its report; exits 1 with the reason when a component fails."""
    stack = _stack_to_start(broker)
    try:
        info = stack.up()
    except StackError as exc:
        say(f"error: {exc}")
        raise typer.Exit(1) from exc
    write_stack_pointer(stack.state_dir)
    for name, component in (("postgres", info.postgres), ("broker", info.broker)):
        kind = f" ({info.broker_kind})" if component is info.broker else ""
        say(f"{name:<9} {component.outcome}{kind}: pid {component.pid}, port {component.port}")
    if info.broker_data_lost:
        say(_BROKER_DATA_LOST)
    say(f"state in {stack.state_dir}")
    _print_settings(info.database_url, info.kafka_bootstrap)
    return stack, info


def stop_stack() -> None:
    """`stack down`'s work and its report: the services first, then Postgres and the broker."""
    stack = _stack()
    before = stack.status()
    try:
        services: list[StoppedService] = stack.down()
    except StackError as exc:
        say(f"error: {exc}")
        raise typer.Exit(1) from exc
    clear_stack_pointer(stack.state_dir)
    for gone in services:
        how = "killed after not stopping in time" if gone.killed else "stopped"
        say(f"service   {gone.record.service:<10} {how} (pid {gone.record.pid})")
    stopped = [
        f"{name} (pid {status.pid})"
        for name, status in (("postgres", before.postgres), ("broker", before.broker))
        if status.pid is not None
    ]
    if stopped:
        say(f"stopped {', '.join(stopped)} in {stack.state_dir}")
    elif not services:
        say(f"nothing was running ({_where(stack)})")


def _where(stack: EmbeddedStack) -> str:
    settings = load_cli_settings()
    if (stack.state_dir / "stack.json").is_file() or "state_dir" in settings.model_fields_set:
        return f"state dir {stack.state_dir}"
    return settings.where_looked()


@stack_app.command()
def up(
    broker: Annotated[
        BrokerKind | None,
        typer.Option(
            help="tansu (in memory, the default) or kafka (Apache Kafka, keeps its data; needs"
            " Java 17+ and Maven). Default: AGENTLOG_STACK_BROKER, else the running one."
        ),
    ] = None,
) -> None:
    """Start Postgres and the broker (or restart a dead one).

    Harmless when running.
    """
    start_stack(broker)


@stack_app.command()
def down() -> None:
    """Stop the services, then Postgres and the broker.

    Leaves no process behind; harmless when stopped.
    """
    stop_stack()


@stack_app.command()
def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the status (and the services) as JSON.")
    ] = False,
) -> None:
    """Print the connection settings (eval-able) and the services.

    Exits 1 if the stack is not running.
    """
    stack = _stack()
    current = stack.status()
    services = list_services(stack.state_dir)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    **current.to_json(),
                    "state_dir": str(stack.state_dir),
                    "services": [_service_json(s) for s in services],
                },
                indent=2,
            )
        )
    else:
        say(_describe("postgres", current.postgres))
        say(_describe("broker", current.broker))
        for record in services:
            for line in describe_service(record):
                say(line)
        if current.running and current.database_url and current.kafka_bootstrap:
            say(f"state in {stack.state_dir}")
            _print_settings(current.database_url, current.kafka_bootstrap)
        else:
            say(f"the stack is not running ({_where(stack)}): start it with `agentlog stack up`")
    if not current.running:
        raise typer.Exit(1)
