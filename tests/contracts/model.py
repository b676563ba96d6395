"""The language-model contract: every adapter must pass these tests.

Subclass ``ModelContract`` as ``Test<Adapter>`` and override the ``model`` fixture with a
started adapter. Requests come from the agents' own request builders, so the suite exercises
what the services really send; the agent-level tests check the guarantees the agents keep
whatever text a model returns (framing, budgets, verdicts from the rubric).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.agents.constraints import parse_constraints
from shared.agents.critic import build_critique_request, critique_draft
from shared.agents.draft import parse_draft
from shared.agents.rubric import evaluate
from shared.agents.summarizer import build_summarize_request, summarize_memory
from shared.agents.writer import build_write_request, write_draft
from shared.llm import CompletionRequest, LanguageModel
from shared.llm.prompts import load_prompt
from tests.unit._agent_samples import (
    GOAL,
    SOURCE_IDS,
    critique_task,
    memory_items,
    summarize_task,
    write_task,
)

__all__ = ["ModelContract", "sample_requests"]

_DRAFT = (
    "# Event store\n\nagentlog keeps every workflow as an append-only stream of events in the "
    "event store, and services talk through Kafka topics. [docs/design.md#1]\n"
)


def sample_requests() -> list[CompletionRequest]:
    """One realistic request of each task kind, as the agents build them."""
    critique = critique_task(_DRAFT)
    report = evaluate(GOAL, parse_constraints([]), parse_draft(_DRAFT), SOURCE_IDS)
    return [
        build_write_request(write_task()),
        build_critique_request(critique, report),
        build_summarize_request(summarize_task(memory_items(_DRAFT), budget_chars=900), 700),
    ]


class ModelContract:
    """The behaviour every LanguageModel adapter shares."""

    @pytest.fixture
    async def model(self) -> AsyncIterator[LanguageModel]:
        """A started adapter; subclasses override this."""
        raise NotImplementedError("subclasses provide the adapter under test")
        yield  # noqa: PT022 - unreachable; makes this an async generator like the overrides

    @pytest.mark.parametrize("kind", [0, 1, 2], ids=["write", "critique", "summarize"])
    async def test_answers_every_task_kind(self, model: LanguageModel, kind: int) -> None:
        """Each task kind gets a non-empty answer within the request's character limit."""
        request = sample_requests()[kind]
        completion = await model.complete(request)
        assert completion.text.strip()
        assert len(completion.text) <= request.max_output_chars
        assert completion.provider == model.provider
        assert completion.model
        assert completion.strategy_version
        assert completion.prompt_tokens >= 0
        assert completion.completion_tokens >= 0

    async def test_provenance_mirrors_the_completion(self, model: LanguageModel) -> None:
        """The provenance record carries the completion's provider, model, version and costs."""
        completion = await model.complete(sample_requests()[0])
        provenance = completion.provenance()
        assert (provenance.provider, provenance.model) == (completion.provider, completion.model)
        assert provenance.strategy_version == completion.strategy_version
        assert provenance.prompt_tokens == completion.prompt_tokens
        assert provenance.completion_tokens == completion.completion_tokens
        assert provenance.tokens_estimated == completion.tokens_estimated

    async def test_results_name_the_prompt_that_produced_them(self, model: LanguageModel) -> None:
        """Every agent's result records its prompt's id, version and content hash."""
        write = await write_draft(write_task(), model)
        critique = await critique_draft(critique_task(_DRAFT), model)
        manifest = await summarize_memory(summarize_task(memory_items(_DRAFT)), model)
        for result, agent in ((write, "writer"), (critique, "critic"), (manifest, "summarizer")):
            prompt = load_prompt(agent)
            provenance = result.provenance
            assert (provenance.prompt_id, provenance.prompt_version) == (prompt.id, prompt.version)
            assert provenance.prompt_hash == prompt.sha256

    async def test_a_pinned_prompt_version_is_used(self, model: LanguageModel) -> None:
        """A task pinned to another prompt version is built from it and records it."""
        task = write_task().model_copy(update={"prompt_version": "2.0.0"})
        request = build_write_request(task)
        assert request.system == load_prompt("writer", "2.0.0").system
        result = await write_draft(task, model)
        assert result.provenance.prompt_version == "2.0.0"
        assert result.provenance.prompt_hash == load_prompt("writer", "2.0.0").sha256

    async def test_a_small_output_limit_is_respected(self, model: LanguageModel) -> None:
        """The answer never exceeds max_output_chars, however small."""
        base = sample_requests()[0]
        small = CompletionRequest(
            task=base.task,
            system=base.system,
            prompt=base.prompt,
            context=base.context,
            max_output_chars=40,
        )
        completion = await model.complete(small)
        assert 0 < len(completion.text) <= 40

    async def test_writer_frames_any_answer_as_a_report(self, model: LanguageModel) -> None:
        """The writer's result is a titled report whose listed sources are known and cited."""
        result = await write_draft(write_task(), model)
        parsed = parse_draft(result.draft)
        assert parsed.title
        assert set(result.cited_source_ids) <= set(SOURCE_IDS)
        assert list(parsed.sources) == result.cited_source_ids
        assert result.provenance.provider == model.provider

    async def test_critic_verdict_comes_from_the_rubric(self, model: LanguageModel) -> None:
        """The verdict and checks are the rubric's whatever the model says."""
        task = critique_task(_DRAFT, constraints=["avoid: Kafka"])
        result = await critique_draft(task, model)
        assert result.verdict == "revise"
        assert result.checks["banned_content"] is False
        assert result.feedback[-1].startswith("[review] ")

    async def test_summarizer_stays_under_budget(self, model: LanguageModel) -> None:
        """The manifest is strictly shorter than the budget whatever the model returns."""
        task = summarize_task(memory_items(_DRAFT), budget_chars=300)
        result = await summarize_memory(task, model)
        assert len(result.manifest) < 300
        assert "goal" in result.covered_refs
