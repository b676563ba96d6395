"""``MeteredModel``: an interceptor around the model port that prices every call.

Wired by the worker's composition root around whichever adapter runs, so no adapter and no
agent computes money. A completion gets ``cost_usd`` from the operator's price table
(``Settings.llm_prices``: USD per million input and output tokens, by model); a call that
fails still reports what it used, on the ``ModelError`` the worker turns into a TaskFailure,
so budgets count failed attempts too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from schemas.messages import Provenance
from shared.llm.forwarding import ForwardingModel
from shared.llm.offline import OFFLINE_PROVIDER
from shared.llm.port import Completion, CompletionRequest, LanguageModel, ModelError

__all__ = ["MeteredModel", "Prices", "cost_usd"]

#: Model name → (USD per million input tokens, USD per million output tokens).
Prices = Mapping[str, tuple[float, float]]


def cost_usd(
    prices: Prices,
    *,
    provider: str,
    models: tuple[str, ...],
    prompt_tokens: int,
    completion_tokens: int,
) -> float:
    """What the tokens cost at the first of ``models`` the table prices; 0 offline or unpriced.

    ``models`` lists the names to look up, most specific first: a provider may answer with a
    dated name (``gpt-4o-mini-2024-07-18``) for the configured ``gpt-4o-mini``.
    """
    if provider == OFFLINE_PROVIDER:
        return 0.0  # local and free; its token counts still feed token budgets
    price = next((prices[m] for m in models if m in prices), None)
    if price is None:
        return 0.0
    usd_in, usd_out = price
    return prompt_tokens * usd_in / 1e6 + completion_tokens * usd_out / 1e6


class MeteredModel(ForwardingModel):
    """Delegates to ``inner`` and prices what each call used."""

    def __init__(self, inner: LanguageModel, prices: Prices) -> None:
        super().__init__(inner)
        self._prices = dict(prices)

    async def complete(self, request: CompletionRequest) -> Completion:
        """The inner model's completion with its cost; a failure carries its usage and cost."""
        try:
            completion = await self.inner.complete(request)
        except ModelError as exc:
            exc.provenance = Provenance(
                provider=self.provider,
                model=self.name,
                strategy_version="failure",
                prompt_tokens=exc.prompt_tokens,
                completion_tokens=exc.completion_tokens,
                tokens_estimated=False,
                cost_usd=self._cost(self.name, exc.prompt_tokens, exc.completion_tokens),
                prompt_id=request.prompt_id,
                prompt_version=request.prompt_version,
                prompt_hash=request.prompt_hash,
            )
            raise
        cost = self._cost(completion.model, completion.prompt_tokens, completion.completion_tokens)
        return dataclasses.replace(completion, cost_usd=cost)

    def _cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        return cost_usd(
            self._prices,
            provider=self.provider,
            models=(model, self.name),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
