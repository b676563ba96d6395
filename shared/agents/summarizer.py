"""The summarizer agent: working memory compressed into the next project manifest.

The agent writes the header (version and goal) and guarantees the budget: the model gets what
is left after the header, and whatever it returns is cut at a line boundary to fit, so the
manifest is always strictly shorter than ``budget_chars``. Each bullet ends with the ``[ref]``
of the memory item it comes from (and the source ids that item cites); ``covered_refs`` lists
the items the manifest represents.
"""

from __future__ import annotations

from schemas.messages import ManifestResult, MemoryItem, SummarizeTask
from shared.llm.contexts import ItemData, SummarizeContext
from shared.llm.port import CompletionRequest, LanguageModel
from shared.llm.prompts import Prompt, load_prompt
from shared.llm.text import clip, extract_citations

__all__ = ["build_summarize_request", "manifest_header", "summarize_memory"]

_PROMPT_ITEM_CHARS = 3_000
_PROMPT_TOTAL_CHARS = 40_000
_MAX_REFS = 500


def manifest_header(task: SummarizeTask) -> str:
    """The manifest's first lines: its version and the goal (shortened to fit small budgets)."""
    goal = clip(" ".join(task.goal.split()), min(400, task.budget_chars // 3))
    return f"# Project manifest v{task.manifest_version}\n\nGoal: {goal}\n"


def build_summarize_request(
    task: SummarizeTask, body_budget: int, prompt: Prompt | None = None
) -> CompletionRequest:
    """The model request for the manifest body, at most ``body_budget`` characters."""
    prompt = prompt or load_prompt("summarizer", task.prompt_version)
    items: list[ItemData] = [{"kind": i.kind, "ref": i.ref, "text": i.text} for i in task.items]
    context: SummarizeContext = {"goal": task.goal, "items": items, "budget_chars": body_budget}
    shown: list[str] = []
    room = _PROMPT_TOTAL_CHARS
    for item in task.items:
        block = f"[{item.ref}] ({item.kind})\n{clip(item.text, _PROMPT_ITEM_CHARS)}"
        if len(block) > room:
            break
        shown.append(block)
        room -= len(block)
    return CompletionRequest(
        task="summarize",
        system=prompt.system,
        prompt=prompt.render(goal=task.goal, budget=body_budget, memory="\n\n".join(shown)),
        context=context,
        max_output_chars=max(body_budget, 1),
        prompt_id=prompt.id,
        prompt_version=prompt.version,
        prompt_hash=prompt.sha256,
        strategy=prompt.strategy(0).offline,
    )


async def summarize_memory(task: SummarizeTask, model: LanguageModel) -> ManifestResult:
    """Compress the task's memory items into manifest version ``task.manifest_version``."""
    header = manifest_header(task)
    body_budget = task.budget_chars - len(header) - 2  # "\n" separator, and strictly under
    request = build_summarize_request(task, body_budget)
    completion = await model.complete(request)
    body = _fit(completion.text.strip(), body_budget)
    manifest = f"{header}\n{body}" if body else header
    return ManifestResult(
        workflow_id=task.workflow_id,
        task_id=task.task_id,
        attempt=task.attempt,
        provenance=completion.provenance(request),
        manifest=manifest,
        manifest_version=task.manifest_version,
        source_chars=sum(len(item.text) for item in task.items),
        covered_refs=_covered(task.items, body)[:_MAX_REFS],
    )


def _fit(body: str, budget: int) -> str:
    """Whole lines of ``body`` while they fit the budget (a remote model may overshoot)."""
    if len(body) <= budget:
        return body
    kept: list[str] = []
    size = -1  # the first line has no separator
    for line in body.splitlines():
        if size + 1 + len(line) > budget:
            break
        kept.append(line)
        size += 1 + len(line)
    return "\n".join(kept).rstrip()


def _covered(items: list[MemoryItem], body: str) -> list[str]:
    refs: list[str] = []
    for item in items:
        if item.kind == "goal" or f"[{item.ref}]" in body:
            refs.append(item.ref)
        elif item.kind == "manifest" and any(
            f"[{c}]" in body for c in extract_citations(item.text)[1]
        ):
            refs.append(item.ref)  # carried-over bullets keep their original source ids
    return list(dict.fromkeys(refs))
