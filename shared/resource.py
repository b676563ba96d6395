"""The lifecycle every async resource shares: ``start()``/``stop()`` and ``async with``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

__all__ = ["AsyncResource"]


class AsyncResource(ABC):
    """Opened with ``start()`` and released with ``stop()``, or used as ``async with``."""

    @abstractmethod
    async def start(self) -> None:
        """Acquire connections and whatever else the resource needs."""

    @abstractmethod
    async def stop(self) -> None:
        """Release everything ``start()`` acquired."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
