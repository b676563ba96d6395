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
from shared.llm.text import clip, neutralize_markup

__all__ = [
    "DEFAULT_TARGET_WORDS",
    "PROMPT_VERSION",
    "build_write_request",
    "feedback_directives",
    "write_draft",
]

DEFAULT_TARGET_WORDS = 250
PROMPT_VERSION = "writer-1"
_MAX_OUTPUT_CHARS = 16_000
_PROMPT_SOURCE_CHARS = 24_000  # what a remote model is shown of the passages, best first
_MAX_CITED = 200

_SYSTEM = """You are the writer agent of agentlog. You write concise, factual Markdown reports \
grounded only in the source passages you are given.
Rules:
- Write 2 to 6 paragraphs of plain prose. Do not write a title or a list of sources.
- End every paragraph with the ids of the sources it uses, in square brackets, for example \
[docs/design.md#3]. Cite only ids from the passages.
- If the sources do not cover part of the goal, say so as bullet points under a "## Gaps" \
heading, without citations.
- When revising, keep what is good, apply every feedback item, and return the whole body."""


def feedback_directives(feedback: Sequence[str]) -> list[DirectiveData]:
    """The tagged feedback lines as directives; untagged lines and notes carry no edit."""
    directives: list[DirectiveData] = []
    for line in feedback:
        finding = parse_finding(line)
        if finding is not None and finding.tag not in {"note", "review"}:
            directives.append({"tag": finding.tag, "term": finding.term, "limit": finding.limit})
    return directives


def build_write_request(
    task: WriteTask, *, target_words: int = DEFAULT_TARGET_WORDS
) -> CompletionRequest:
    """The model request for one write task (first draft or revision)."""
    passages: list[PassageData] = [
        {"source_id": p.source_id, "title": p.title, "text": p.text} for p in task.passages
    ]
    previous: list[ParagraphData] = []
    if task.revision > 0 and task.previous_draft:
        parsed = parse_draft(task.previous_draft)
        previous = [
            {"text": p.text, "citations": list(p.citations), "section": "body"}
            for p in parsed.paragraphs
        ]
        previous += [{"text": gap, "citations": [], "section": "gaps"} for gap in parsed.gaps]
    context: WriteContext = {
        "goal": task.goal,
        "passages": passages,
        "revision": task.revision,
        "previous_paragraphs": previous,
        "directives": feedback_directives(task.feedback) if task.revision > 0 else [],
        "target_words": target_words,
    }
    return CompletionRequest(
        task="write",
        system=_SYSTEM,
        prompt=_prompt(task),
        context=context,
        max_output_chars=_MAX_OUTPUT_CHARS,
        prompt_version=PROMPT_VERSION,
    )


def _prompt(task: WriteTask) -> str:
    parts = [f"Goal: {task.goal}"]
    if task.constraints:
        parts.append("Constraints:\n" + "\n".join(f"- {c}" for c in task.constraints))
    if task.manifest:
        parts.append(f"Project memory (earlier work, for context):\n{clip(task.manifest, 4_000)}")
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
    parts.append("Source passages:\n\n" + ("\n\n".join(shown) or "(none)"))
    if task.revision > 0 and task.previous_draft:
        parts.append(f"Previous draft (revision {task.revision - 1}):\n{task.previous_draft}")
        parts.append(
            "Reviewer feedback, apply every item:\n" + "\n".join(f"- {f}" for f in task.feedback)
        )
        parts.append("Write the revised body.")
    else:
        parts.append("Write the body of the report.")
    return "\n\n".join(parts)


async def write_draft(task: WriteTask, model: LanguageModel) -> DraftResult:
    """Write (or revise) the draft: the model's body inside the agent's title and sources."""
    completion = await model.complete(build_write_request(task))
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
        provenance=completion.provenance(),
        draft=draft,
        cited_source_ids=cited,
        revision=task.revision,
    )
