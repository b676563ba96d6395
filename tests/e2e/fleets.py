"""One fleet of the five services for every end-to-end module with the same settings.

Starting a fleet costs several seconds on a small machine (five interpreters importing the
services, then joining their consumer groups) before its first workflow moves. Modules that ask
for the plain ``services`` fixture with the same environment get the same running fleet, one
after another (tests/e2e/conftest.py runs them next to each other and stops the fleet before any
test that does not use it, so no other fleet ever shares its consumer groups).

At most one pooled fleet runs at a time: another environment stops it and starts its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from shared.runtime.processes import ServiceProcesses

__all__ = ["FleetPool"]


class FleetPool:
    """Hands out the running fleet while its environment stays the same."""

    def __init__(self, cwd: Path) -> None:
        self._cwd = cwd
        self._env: dict[str, str] | None = None
        self._fleet: ServiceProcesses | None = None

    def fleet(self, env: Mapping[str, str], log_dir: Path) -> ServiceProcesses:
        """The running fleet for ``env``: the current one if it was started with the same
        environment and none of its services died, else (after stopping it) a new one."""
        wanted = dict(env)
        if self._fleet is not None and self._env == wanted and not self._fleet.dead():
            return self._fleet
        self.stop()
        fleet = ServiceProcesses(wanted, log_dir, cwd=self._cwd)
        fleet.start()
        self._env, self._fleet = wanted, fleet
        return fleet

    def stop_if_dead(self) -> None:
        """Stop the fleet now if one of its services died (its exit is then reported here)."""
        if self._fleet is not None and self._fleet.dead():
            self.stop()

    def stop(self) -> None:
        """Stop the running fleet, if any; every service must exit cleanly."""
        fleet, self._fleet, self._env = self._fleet, None, None
        if fleet is None:
            return
        codes = fleet.stop()
        assert all(code == 0 for code in codes.values()), f"unclean service exits: {codes}"
