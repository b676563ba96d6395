"""The writer-critic reflection loop with the offline model: feedback really drives revisions."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from schemas.messages import CritiqueResult, DraftResult
from shared.agents.critic import critique_draft
from shared.agents.draft import parse_draft
from shared.agents.writer import write_draft
from shared.llm import OfflineModel
from tests.unit._agent_samples import critique_task, write_task

MODEL = OfflineModel()
MAX_REVISIONS = 2

Round = tuple[DraftResult, CritiqueResult]


async def _loop(constraints: Sequence[str]) -> list[Round]:
    """Write, critique, and revise from the latest feedback until approved or out of revisions."""
    rounds: list[Round] = []
    draft = await write_draft(write_task(constraints=constraints), MODEL)
    for revision in range(MAX_REVISIONS + 1):
        verdict = await critique_draft(
            critique_task(draft.draft, constraints=constraints, revision=revision), MODEL
        )
        rounds.append((draft, verdict))
        if verdict.verdict == "approved" or revision == MAX_REVISIONS:
            break
        draft = await write_draft(
            write_task(
                constraints=constraints,
                feedback=verdict.feedback,
                previous_draft=draft.draft,
                revision=revision + 1,
            ),
            MODEL,
        )
    return rounds


def _tags(result: CritiqueResult) -> set[str]:
    return {line.split("]")[0].lstrip("[") for line in result.feedback} - {"review", "note"}


async def test_plain_goal_is_approved_at_revision_zero() -> None:
    """Without constraints the first draft already passes the rubric."""
    rounds = await _loop([])
    assert len(rounds) == 1
    assert rounds[0][1].verdict == "approved"
    assert rounds[0][1].score == 1.0


@pytest.mark.parametrize(
    ("constraints", "tags"),
    [
        (["avoid: simply"], {"banned"}),
        (["max words: 60"], {"too-long"}),
        (["must mention: GDPR"], {"must-mention"}),
        (
            ["avoid: simply", "max words: 90", "must mention: GDPR"],
            {"banned", "too-long", "must-mention"},
        ),
    ],
)
async def test_failing_first_draft_is_fixed_by_its_feedback(
    constraints: list[str], tags: set[str]
) -> None:
    """Revision 0 is sent back with the expected findings; revising approves within two rounds."""
    rounds = await _loop(constraints)
    first_verdict = rounds[0][1]
    assert first_verdict.verdict == "revise"
    assert _tags(first_verdict) == tags
    final_draft, final_verdict = rounds[-1]
    assert final_verdict.verdict == "approved"
    assert 2 <= len(rounds) <= MAX_REVISIONS + 1
    assert final_draft.revision == len(rounds) - 1


async def test_required_term_missing_from_every_source_becomes_a_gap() -> None:
    """A required term no passage covers ends up declared in Gaps, and the draft is approved."""
    rounds = await _loop(["must mention: sharding"])
    assert _tags(rounds[0][1]) == {"must-mention"}
    final_draft, final_verdict = rounds[-1]
    assert final_verdict.verdict == "approved"
    assert parse_draft(final_draft.draft).gaps == ('The sources do not cover "sharding".',)
    assert any(
        line.startswith('[note] "sharding" appears only as a gap')
        for line in final_verdict.feedback
    )


async def test_the_whole_loop_is_deterministic() -> None:
    """Running the same loop twice produces identical drafts and verdicts."""
    constraints = ["avoid: simply", "max words: 90", "must mention: GDPR"]
    assert await _loop(constraints) == await _loop(constraints)
