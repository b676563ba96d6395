"""The summarizer: manifests under budget that keep their findings' source ids."""

from __future__ import annotations

import re

import pytest

from schemas.messages import MemoryItem
from shared.agents.summarizer import summarize_memory
from shared.llm import Completion, CompletionRequest, LanguageModel, OfflineModel
from tests.unit._agent_samples import GOAL, PASSAGES, SOURCE_IDS, memory_items, summarize_task

MODEL = OfflineModel()
DRAFT = (
    "# Report\n\nagentlog keeps every workflow as an append-only stream of events in the event "
    "store. [docs/design.md#1]\n\n## Sources\n\n- [docs/design.md#1] Event store\n"
)


@pytest.mark.parametrize("budget", [200, 400, 800, 3000])
async def test_manifest_stays_strictly_under_budget(budget: int) -> None:
    """Whatever the budget, the manifest is shorter than it and names its version and goal."""
    items = memory_items(DRAFT, ['[banned] Remove "simply" (paragraph 1).'])
    result = await summarize_memory(summarize_task(items, budget_chars=budget, version=3), MODEL)
    assert len(result.manifest) < budget
    assert result.manifest.startswith("# Project manifest v3\n\nGoal: ")
    assert result.manifest_version == 3


async def test_every_bullet_keeps_its_source_ids() -> None:
    """Each kept finding ends with the id of the passage it came from."""
    result = await summarize_memory(summarize_task(memory_items(), budget_chars=900), MODEL)
    bullets = [line for line in result.manifest.splitlines() if line.startswith("- ")]
    assert bullets
    texts = {p.source_id: " ".join(p.text.split()) for p in PASSAGES}
    for bullet in bullets:
        cited = re.findall(r"\[([^\]]+)\]", bullet)
        assert len(cited) == 1
        sentence = re.sub(r"\s*\[[^\]]+\]", "", bullet[2:]).rstrip(".")
        assert sentence in texts[cited[0]]


async def test_accounting_of_sources_and_covered_refs() -> None:
    """source_chars totals the input; covered_refs lists exactly the items the manifest shows."""
    items = memory_items(DRAFT)
    result = await summarize_memory(summarize_task(items, budget_chars=600), MODEL)
    assert result.source_chars == sum(len(item.text) for item in items)
    shown = {ref for ref in SOURCE_IDS if f"[{ref}]" in result.manifest}
    assert set(result.covered_refs) == {"goal", *shown} | (
        {"draft-r0"} if "[draft-r0]" in result.manifest else set()
    )
    assert 0 < len(shown) < len(SOURCE_IDS)  # a tight budget keeps some findings, not all


async def test_a_generous_budget_keeps_every_source() -> None:
    """With room to spare, every passage is represented."""
    result = await summarize_memory(summarize_task(memory_items(), budget_chars=20_000), MODEL)
    assert set(SOURCE_IDS) <= set(result.covered_refs)


async def test_previous_manifest_bullets_keep_their_original_ids() -> None:
    """Re-summarizing a manifest carries its bullets' source ids, not the manifest's ref."""
    first = await summarize_memory(summarize_task(memory_items(), budget_chars=600), MODEL)
    items = [
        MemoryItem(kind="goal", ref="goal", text=GOAL),
        MemoryItem(kind="manifest", ref="manifest-v1", text=first.manifest),
    ]
    second = await summarize_memory(summarize_task(items, budget_chars=600, version=2), MODEL)
    assert "[manifest-v1]" not in second.manifest
    assert "manifest-v1" in second.covered_refs
    assert re.findall(r"\[([^\]]+)\]", second.manifest) == re.findall(
        r"\[([^\]]+)\]", first.manifest
    )


async def test_summaries_are_deterministic() -> None:
    """The same task twice gives the same manifest."""
    task = summarize_task(memory_items(DRAFT), budget_chars=700)
    assert await summarize_memory(task, MODEL) == await summarize_memory(task, MODEL)


class _Verbose(LanguageModel):
    """A stand-in remote model that ignores the budget."""

    @property
    def provider(self) -> str:
        return "verbose"

    @property
    def name(self) -> str:
        return "verbose-1"

    async def complete(self, request: CompletionRequest) -> Completion:
        lines = [f"- Fact number {n} about events. [docs/design.md#1]" for n in range(200)]
        return Completion("## Findings\n" + "\n".join(lines), self.provider, self.name, "t/1")


async def test_an_overlong_model_answer_is_cut_at_a_line() -> None:
    """A model that overshoots is cut to whole lines within the budget."""
    result = await summarize_memory(summarize_task(memory_items(), budget_chars=500), _Verbose())
    assert len(result.manifest) < 500
    assert result.manifest.splitlines()[-1].endswith("[docs/design.md#1]")
    assert result.covered_refs == ["goal", "docs/design.md#1"]
