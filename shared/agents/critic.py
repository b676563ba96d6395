"""The critic agent: the rubric decides, the model explains.

The verdict, score and checks come from the deterministic rubric (``shared.agents.rubric``), so
approval never depends on a model's mood. The model turns the rubric's results into a short
review, appended to the feedback as a ``[review]`` line that the writer's parser ignores but a
remote writer model reads.
"""

from __future__ import annotations

from schemas.messages import CritiqueResult, CritiqueTask
from shared.agents.constraints import parse_constraints
from shared.agents.draft import parse_draft
from shared.agents.rubric import RubricLimits, RubricReport, evaluate
from shared.llm.contexts import CheckData, CritiqueContext
from shared.llm.port import CompletionRequest, LanguageModel
from shared.llm.prompts import Prompt, load_prompt
from shared.llm.text import clip

__all__ = ["build_critique_request", "critique_draft"]

_MAX_FEEDBACK = 50
_REVIEW_CHARS = 480


def build_critique_request(
    task: CritiqueTask, report: RubricReport, prompt: Prompt | None = None
) -> CompletionRequest:
    """The model request explaining one rubric report, in the task's pinned prompt version."""
    prompt = prompt or load_prompt("critic", task.prompt_version)
    checks: list[CheckData] = [
        {
            "name": c.name,
            "passed": c.passed,
            "summary": c.summary,
            "findings": [f.message for f in c.findings],
        }
        for c in report.checks
    ]
    context: CritiqueContext = {
        "goal": task.goal,
        "verdict": "approved" if report.approved else "revise",
        "score": report.score,
        "checks": checks,
        "notes": [n.message for n in report.notes],
    }
    results = "\n".join(
        f"- {c['name']}: {'pass' if c['passed'] else 'FAIL'} ({c['summary']})" for c in checks
    )
    findings = "\n".join(f"- {f}" for c in checks for f in c["findings"]) or "- none"
    return CompletionRequest(
        task="critique",
        system=prompt.system,
        prompt=prompt.render(
            goal=task.goal,
            verdict=context["verdict"],
            score=report.score,
            results=results,
            findings=findings,
            revision=task.revision,
            draft=clip(task.draft, 20_000),
        ),
        context=context,
        max_output_chars=2_000,
        prompt_id=prompt.id,
        prompt_version=prompt.version,
        prompt_hash=prompt.sha256,
        strategy=prompt.strategy(0).offline,
    )


async def critique_draft(
    task: CritiqueTask, model: LanguageModel, limits: RubricLimits | None = None
) -> CritiqueResult:
    """Judge the draft against the goal, the constraints and the known sources."""
    report = evaluate(
        task.goal,
        parse_constraints(task.constraints),
        parse_draft(task.draft),
        task.source_ids,
        limits or RubricLimits(),
    )
    request = build_critique_request(task, report)
    completion = await model.complete(request)
    review = " ".join(completion.text.split("\n\n", 1)[0].split())
    feedback = report.feedback(limit=_MAX_FEEDBACK - 1)
    if review:
        feedback.append(f"[review] {clip(review, _REVIEW_CHARS)}")
    return CritiqueResult(
        workflow_id=task.workflow_id,
        task_id=task.task_id,
        attempt=task.attempt,
        provenance=completion.provenance(request),
        verdict="approved" if report.approved else "revise",
        score=round(report.score, 4),
        checks=report.as_dict(),
        feedback=feedback,
        revision=task.revision,
    )
