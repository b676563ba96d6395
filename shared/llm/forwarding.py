"""``ForwardingModel``: a model that hands every call to another one.

The base of the wrappers around the model port (metering, metrics, tracing): each overrides
only ``complete``, and the rest of the port is forwarded here once.
"""

from __future__ import annotations

from shared.llm.port import Completion, CompletionRequest, LanguageModel

__all__ = ["ForwardingModel"]


class ForwardingModel(LanguageModel):
    """Delegates every call to ``inner``."""

    def __init__(self, inner: LanguageModel) -> None:
        self.inner = inner

    @property
    def provider(self) -> str:
        return self.inner.provider

    @property
    def name(self) -> str:
        return self.inner.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    async def aclose(self) -> None:
        """Close the wrapped model."""
        await self.inner.aclose()

    async def complete(self, request: CompletionRequest) -> Completion:
        return await self.inner.complete(request)
