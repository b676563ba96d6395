"""The writer agent: a cited Markdown report from passages, revised from critique feedback.

The model writes the body (paragraphs ending in citations, optional Gaps section); the agent
adds the frame it can get right by itself: the title and the list of the sources actually cited.
On revisions the critique's tagged feedback becomes structured directives for the offline model
and a checklist in the prompt of a remote one. The first draft does not read the free-text
constraints: checking them is the critic's job, and its feedback drives the revision.

Passages are untrusted text. A remote model is shown them neutralised
(``shared.llm.text.neutralize_markup``: no brackets, so no citation markers or fake passage
headers, and no headings), the offline model neutralises every sentence it quotes, and the
Sources list holds only passage ids the body cites. The critic checks the result either way.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.messages import DraftResult, WriteTask
from shared.agents.draft import (
    parse_draft,
    render_draft,
    strip_frame,
    title_from_goal,
    without_terms,
)
from shared.agents.rubric import parse_finding
from shared.llm.contexts import DirectiveData, ParagraphData, PassageData, WriteContext
from shared.llm.port import CompletionRequest, LanguageModel
from shared.llm.prompts import Prompt, load_prompt
from shared.llm.text import clip, neutralize_markup

__all__ = [
    "DEFAULT_TARGET_WORDS",
    "build_write_request",
    "feedback_directives",
    "write_draft",
]

#: The first draft's length when the prompt sets none.
DEFAULT_TARGET_WORDS = 250
_MAX_OUTPUT_CHARS = 16_000
_PROMPT_SOURCE_CHARS = 24_000  # what a remote model is shown of the passages, best first
_MAX_CITED = 200


def feedback_directives(feedback: Sequence[str]) -> list[DirectiveData]:
    """The tagged feedback lines as directives; untagged lines and notes carry no edit."""
    directives: list[DirectiveData] = []
    for line in feedback:
        finding = parse_finding(line)
        if finding is not None and finding.tag not in {"note", "review"}:
            directives.append({"tag": finding.tag, "term": finding.term, "limit": finding.limit})
    return directives


def build_write_request(
    task: WriteTask, *, target_words: int | None = None, prompt: Prompt | None = None
) -> CompletionRequest:
    """The model request for one write task (first draft or revision).

    The prompt is the task's pinned version (``task.prompt_version``; None: the current one),
    and ``task.strategy`` picks its strategy: the offline algorithm, and for a remote model an
    extra instruction. ``target_words`` overrides the prompt's length policy.
    """
    prompt = prompt or load_prompt("writer", task.prompt_version)
    strategy = prompt.strategy(task.strategy)
    passages: list[PassageData] = [
        {"source_id": p.source_id, "title": p.title, "text": p.text} for p in task.passages
    ]
    previous: list[ParagraphData] = []
    if task.revision > 0 and task.previous_draft:
        parsed = parse_draft(task.previous_draft)
        previous = [
            {
                "text": p.text,
                "citations": list(p.citations),
                "section": "body",
                "heading": p.heading,
            }
            for p in parsed.paragraphs
        ]
        previous += [{"text": gap, "citations": [], "section": "gaps"} for gap in parsed.gaps]
    context: WriteContext = {
        "goal": task.goal,
        "passages": passages,
        "revision": task.revision,
        "previous_paragraphs": previous,
        "directives": feedback_directives(task.feedback) if task.revision > 0 else [],
        "target_words": target_words or prompt.target_words or DEFAULT_TARGET_WORDS,
    }
    return CompletionRequest(
        task="write",
        system=prompt.system,
        prompt=_prompt(task, prompt, strategy.instruction),
        context=context,
        max_output_chars=_MAX_OUTPUT_CHARS,
        prompt_id=prompt.id,
        prompt_version=prompt.version,
        prompt_hash=prompt.sha256,
        strategy=strategy.offline,
    )


def _prompt(task: WriteTask, prompt: Prompt, instruction: str) -> str:
    shown: list[str] = []
    budget = _PROMPT_SOURCE_CHARS
    for passage in task.passages:
        # Only the header's id is a citable marker; the passage's own brackets are gone.
        title = " ".join(neutralize_markup(passage.title).split())
        block = f"[{passage.source_id}] {title}\n{neutralize_markup(passage.text).strip()}"
        if len(block) > budget:
            break
        shown.append(block)
        budget -= len(block)
    constraints = (
        prompt.part("constraints", items="\n".join(f"- {c}" for c in task.constraints))
        if task.constraints
        else ""
    )
    memory = prompt.part("memory", manifest=clip(task.manifest, 4_000)) if task.manifest else ""
    if task.revision > 0 and task.previous_draft:
        instructions = prompt.part(
            "revision",
            previous=task.revision - 1,
            draft=task.previous_draft,
            feedback="\n".join(f"- {f}" for f in task.feedback),
        )
    else:
        instructions = prompt.part("first_draft")
    return prompt.render(
        goal=task.goal,
        constraints=constraints,
        memory=memory,
        sources="\n\n".join(shown) or "(none)",
        strategy=instruction,
        instructions=instructions,
    )


async def write_draft(task: WriteTask, model: LanguageModel) -> DraftResult:
    """Write (or revise) the draft: the model's body inside the agent's title and sources."""
    request = build_write_request(task)
    completion = await model.complete(request)
    body = strip_frame(completion.text)
    banned = [
        d["term"] for d in feedback_directives(task.feedback) if d["tag"] == "banned" and d["term"]
    ]
    previous_title = (
        parse_draft(task.previous_draft).title if task.revision and task.previous_draft else ""
    )
    # A revision keeps its title (minus banned words) so older feedback stays satisfied.
    title = without_terms(previous_title, banned) if previous_title else title_from_goal(task.goal)
    titles = {p.source_id: p.title for p in task.passages}
    # Every id a reader sees cited (gaps and headings too), so the Sources list matches the text;
    # unknown ids stay out of it, and the critic sends the draft back for them.
    cited = [sid for sid in parse_draft(body).marker_ids() if sid in titles][:_MAX_CITED]
    draft = render_draft(title, body, [(sid, titles[sid]) for sid in cited])
    return DraftResult(
        workflow_id=task.workflow_id,
        task_id=task.task_id,
        attempt=task.attempt,
        provenance=completion.provenance(request),
        draft=draft,
        cited_source_ids=cited,
        revision=task.revision,
    )
