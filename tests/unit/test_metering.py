"""Metering: every model call is priced from the operator's table, failed calls included."""

from __future__ import annotations

import pytest

from shared.llm import Completion, CompletionRequest, LanguageModel, ModelError, OfflineModel
from shared.llm.metering import MeteredModel, cost_usd
from tests.contracts.model import sample_requests

PRICES = {"gpt-4o-mini": (0.15, 0.6)}


class _Billed(LanguageModel):
    """A stand-in remote model: fixed usage, or a failure that reports usage."""

    def __init__(self, *, fail: bool = False, answered_as: str = "gpt-4o-mini") -> None:
        self._fail = fail
        self._answered_as = answered_as

    @property
    def provider(self) -> str:
        return "openai"

    @property
    def name(self) -> str:
        return "gpt-4o-mini"

    async def complete(self, request: CompletionRequest) -> Completion:
        if self._fail:
            raise ModelError("empty", retryable=True, prompt_tokens=2_000, completion_tokens=0)
        return Completion("text", self.provider, self._answered_as, "s", 1_000_000, 500_000, False)


def test_cost_is_tokens_times_price_per_million() -> None:
    """Input and output tokens are priced separately, per million."""
    cost = cost_usd(
        PRICES,
        provider="openai",
        models=("gpt-4o-mini",),
        prompt_tokens=1_000_000,
        completion_tokens=500_000,
    )
    assert cost == pytest.approx(0.15 + 0.3)


def test_unpriced_and_offline_models_cost_nothing() -> None:
    """A model missing from the table costs 0; so does the offline model, whatever its name."""
    assert (
        cost_usd(
            PRICES, provider="openai", models=("llama3",), prompt_tokens=9, completion_tokens=9
        )
        == 0
    )
    assert (
        cost_usd(
            {"agentlog-extractive-1": (1.0, 1.0)},
            provider="offline",
            models=("agentlog-extractive-1",),
            prompt_tokens=9,
            completion_tokens=9,
        )
        == 0
    )


@pytest.mark.parametrize("answered_as", ["gpt-4o-mini", "gpt-4o-mini-2024-07-18"])
async def test_a_completion_carries_its_cost(answered_as: str) -> None:
    """The metered completion is priced, also when the provider answers with a dated name."""
    model = MeteredModel(_Billed(answered_as=answered_as), PRICES)
    request = sample_requests()[0]
    completion = await model.complete(request)
    assert completion.cost_usd == pytest.approx(0.45)
    assert completion.provenance(request).cost_usd == pytest.approx(0.45)


async def test_a_failed_call_reports_what_it_used() -> None:
    """A ModelError leaves the wrapper with the tokens and cost of the failed attempt."""
    model = MeteredModel(_Billed(fail=True), PRICES)
    request = sample_requests()[0]
    with pytest.raises(ModelError) as caught:
        await model.complete(request)
    provenance = caught.value.provenance
    assert provenance is not None
    assert (provenance.provider, provenance.model) == ("openai", "gpt-4o-mini")
    assert provenance.prompt_tokens == 2_000
    assert provenance.cost_usd == pytest.approx(2_000 * 0.15 / 1e6)
    assert provenance.prompt_version == request.prompt_version


async def test_offline_tokens_are_counted_but_free() -> None:
    """The offline model's estimated tokens are reported with a cost of 0."""
    model = MeteredModel(OfflineModel(), {"agentlog-extractive-1": (5.0, 5.0)})
    completion = await model.complete(sample_requests()[0])
    assert completion.prompt_tokens > 0
    assert completion.cost_usd == 0
