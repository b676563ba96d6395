"""Versioned prompts: every agent's system prompt, prompt template and offline strategies.

Each prompt is a TOML file ``shared/llm/prompts/<agent>/<MAJOR.MINOR.PATCH>.toml``; the highest
stable version is the agent's current one. A file marked ``status = "candidate"`` is released
(locked, and a workflow may pin it: ``agentlog fork --prompt writer=2.0.0``) but never current:
a new approach is tried on forks before it becomes every workflow's default, which takes a new
version without the mark. A workflow pins the versions it starts with
(``WorkflowPolicy.prompts``), its task commands carry the pinned version, and every result
records the prompt's id, version and SHA-256 (of the file's bytes), so a report can always be
traced to the exact words that produced it.

A released version never changes: ``prompts/LOCK.json`` holds each file's hash and a unit test
fails when a file differs from it. Changing a prompt means adding a new version file and its
lock entry. A file holds:

- ``id``: the prompt's name, the same across versions (e.g. ``writer.report``);
- ``system`` and ``template``: what a remote model reads; the template's ``{placeholders}`` are
  filled by the agent (``Prompt.render``), and ``[parts]`` holds the optional blocks it fills in;
- ``[[strategies]]``: the agent's strategies, in order: ``offline`` names the algorithm the
  offline model runs, ``instruction`` is added to the prompt of a remote model. Strategy ``n``
  (``WriteTask.strategy``; a backtrack after a cycle moves to the next) is ``n % len``;
- ``status``: ``stable`` (the default) or ``candidate``;
- optional numbers the agent reads, such as the writer's ``target_words``.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from types import MappingProxyType
from typing import Any, Final

__all__ = [
    "AGENTS_WITH_PROMPTS",
    "LOCK_FILE",
    "Prompt",
    "PromptStrategy",
    "UnknownPromptError",
    "available_versions",
    "current_prompt_versions",
    "current_version",
    "load_prompt",
    "lock_entries",
    "prompt_files",
]

AGENTS_WITH_PROMPTS: Final = ("writer", "critic", "summarizer")
LOCK_FILE: Final = "LOCK.json"
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


class UnknownPromptError(LookupError):
    """No prompt file for this agent and version; a task asking for it cannot succeed."""

    #: The worker answers with a TaskFailure that is not retried: another try finds no file either.
    retryable = False


@dataclass(frozen=True)
class PromptStrategy:
    """One way of doing the agent's work: an offline algorithm and a remote model's instruction."""

    offline: str
    instruction: str = ""


@dataclass(frozen=True)
class Prompt:
    """One released prompt version, parsed from ``content`` (the file's text)."""

    id: str
    agent: str
    version: str
    content: str
    sha256: str
    system: str = field(init=False)
    template: str = field(init=False)
    parts: MappingProxyType[str, str] = field(init=False, repr=False)
    strategies: tuple[PromptStrategy, ...] = field(init=False, repr=False)
    target_words: int | None = field(init=False, repr=False)
    candidate: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        data = tomllib.loads(self.content)
        strategies = tuple(
            PromptStrategy(str(s["offline"]), str(s.get("instruction", "")))
            for s in data.get("strategies", [])
        )
        if not strategies:
            raise ValueError(f"prompt {self.agent}/{self.version} declares no strategies")
        target = data.get("target_words")
        status = data.get("status", "stable")
        if status not in {"stable", "candidate"}:
            raise ValueError(f"prompt {self.agent}/{self.version}: unknown status {status!r}")
        # frozen: the parsed fields are set once here, from the content they must match
        object.__setattr__(self, "system", str(data["system"]))
        object.__setattr__(self, "template", str(data["template"]))
        object.__setattr__(self, "parts", MappingProxyType(dict(data.get("parts", {}))))
        object.__setattr__(self, "strategies", strategies)
        object.__setattr__(self, "target_words", int(target) if target is not None else None)
        object.__setattr__(self, "candidate", status == "candidate")

    def strategy(self, index: int) -> PromptStrategy:
        """Strategy ``index``, wrapping around: a backtrack past the last starts over."""
        return self.strategies[index % len(self.strategies)]

    def render(self, **values: Any) -> str:
        """The template with its placeholders filled (values are not themselves expanded)."""
        return self.template.format_map(values)

    def part(self, name: str, **values: Any) -> str:
        """One of the ``[parts]`` blocks with its placeholders filled."""
        return self.parts[name].format_map(values)


def _root() -> Traversable:
    return resources.files("shared.llm").joinpath("prompts")


def _semver(version: str) -> tuple[int, int, int]:
    match = _SEMVER.match(version)
    if match is None:
        raise ValueError(f"{version!r} is not a semantic version (MAJOR.MINOR.PATCH)")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def prompt_files() -> dict[str, bytes]:
    """Every prompt file's bytes by ``<agent>/<version>``, as the lock file names them."""
    found: dict[str, bytes] = {}
    root = _root()
    for folder in sorted(root.iterdir(), key=lambda t: t.name):
        if not folder.is_dir():
            continue
        for file in sorted(folder.iterdir(), key=lambda t: t.name):
            if file.name.endswith(".toml"):
                found[f"{folder.name}/{file.name.removesuffix('.toml')}"] = file.read_bytes()
    return found


def available_versions(agent: str) -> list[str]:
    """The agent's released versions, oldest first; empty for an agent without prompts."""
    folder = _root().joinpath(agent)
    if not folder.is_dir():
        return []
    versions = [f.name.removesuffix(".toml") for f in folder.iterdir() if f.name.endswith(".toml")]
    return sorted(versions, key=_semver)


def current_version(agent: str) -> str | None:
    """The agent's highest stable version; None for an agent without prompts."""
    stable = [v for v in available_versions(agent) if not _load(agent, v).candidate]
    return stable[-1] if stable else None


def current_prompt_versions() -> dict[str, str]:
    """The current version of each agent that has prompts: what a new workflow pins."""
    current = {agent: current_version(agent) for agent in AGENTS_WITH_PROMPTS}
    return {agent: version for agent, version in current.items() if version is not None}


def load_prompt(agent: str, version: str | None = None) -> Prompt:
    """The agent's prompt at ``version`` (None: its current one); cached, files never change."""
    versions = available_versions(agent)
    if version is None:
        version = current_version(agent)
    if version is None or version not in versions:
        known = ", ".join(versions) or "none"
        wanted = "no prompt" if version is None else f"no prompt version {version!r}"
        raise UnknownPromptError(f"{wanted} for agent {agent!r} (available: {known})")
    return _load(agent, version)


@cache
def _load(agent: str, version: str) -> Prompt:
    raw = _root().joinpath(agent, f"{version}.toml").read_bytes()
    content = raw.decode("utf-8")
    prompt_id = str(tomllib.loads(content)["id"])
    return Prompt(prompt_id, agent, version, content, hashlib.sha256(raw).hexdigest())


def lock_entries() -> dict[str, str]:
    """The committed lock: ``<agent>/<version>`` → SHA-256 of the file's bytes."""
    entries: dict[str, str] = json.loads(_root().joinpath(LOCK_FILE).read_text("utf-8"))
    return entries
