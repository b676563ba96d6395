"""The critic: constraint parsing, each rubric check, tagged feedback, and the verdict."""

from __future__ import annotations

import pytest

from shared.agents.constraints import Constraints, parse_constraints
from shared.agents.critic import critique_draft
from shared.agents.draft import cited_sources, parse_draft, render_draft
from shared.agents.rubric import CHECKS, RubricLimits, RubricReport, evaluate, parse_finding
from shared.agents.writer import write_draft
from shared.llm import OfflineModel
from tests.unit._agent_samples import GOAL, SOURCE_IDS, critique_task, write_task

MODEL = OfflineModel()

# About 90 words, covers the goal's key terms (agentlog, event, store, kafka, topics).
GOOD = """# Event store and Kafka topics

agentlog keeps every workflow as an append-only stream of events in the event store. Each event \
records what happened, never what to do next. Streams are versioned, so a stale writer gets a \
conflict instead of overwriting newer events. [docs/design.md#1]

Services talk only through Kafka topics. Every task command goes to the topic of its agent, \
keyed by workflow id, so one workflow's messages stay in order on one partition. Consumers \
commit offsets only after their effect is durable in the event store, which gives \
at-least-once delivery. [docs/design.md#2]

## Sources

- [docs/design.md#1] Event store
- [docs/design.md#2] Kafka topics
"""


def _report(
    draft: str, constraints: list[str] | None = None, limits: RubricLimits | None = None
) -> RubricReport:
    return evaluate(
        GOAL,
        parse_constraints(constraints or []),
        parse_draft(draft),
        SOURCE_IDS,
        limits or RubricLimits(),
    )


def test_constraints_are_parsed_into_rules() -> None:
    """Each recognised phrasing becomes a rule; anything else is kept as free text."""
    parsed = parse_constraints(
        [
            "avoid: simply, just",
            'Do not mention "Java".',
            "must mention: GDPR",
            "max words: 150",
            "at least 50 words",
            "cite at least 3 sources",
            "use a friendly tone",
        ]
    )
    assert parsed == Constraints(
        banned=("simply", "just", "Java"),
        must_mention=("GDPR",),
        max_words=150,
        min_words=50,
        min_sources=3,
        free_text=("use a friendly tone",),
    )


@pytest.mark.parametrize(
    ("line", "max_words"),
    [("under 100 words", 99), ("no more than 80 words", 80), ("Maximum 42 words.", 42)],
)
def test_word_limit_phrasings(line: str, max_words: int) -> None:
    """ "Under N" means at most N - 1; other phrasings mean at most N."""
    assert parse_constraints([line]).max_words == max_words


def test_a_good_draft_passes_every_check() -> None:
    """A covering, fully cited draft of sensible length passes the whole rubric."""
    report = _report(GOOD)
    assert report.approved
    assert report.score == 1.0
    assert report.as_dict() == dict.fromkeys(
        [
            "goal_coverage",
            "citations",
            "citations_known",
            "length",
            "banned_content",
            "required_mentions",
        ],
        True,
    )
    assert report.feedback() == []


def test_missing_key_term_is_reported() -> None:
    """A goal term absent from the body fails coverage with a [missing-term] item."""
    report = _report(GOOD.replace("Kafka", "message"))
    assert not report.as_dict()["goal_coverage"]
    assert '[missing-term] Cover "kafka": no paragraph mentions it.' in report.feedback()


def test_uncited_and_unknown_sources_are_reported() -> None:
    """A paragraph without citation and a citation of an unknown id both fail a citation check."""
    draft = GOOD.replace(" [docs/design.md#1]", "").replace("docs/design.md#2]", "docs/x.md#7]")
    feedback = _report(draft).feedback()
    assert "[uncited] Paragraph 1 cites no source." in feedback
    assert (
        '[unknown-source] Paragraph 2 cites "docs/x.md#7", which is not among the sources.'
        in feedback
    )


def test_min_sources_constraint_is_checked() -> None:
    """Citing fewer distinct sources than required fails with a [min-sources] item."""
    feedback = _report(GOOD, ["min sources: 3"]).feedback()
    assert "[min-sources] Cite at least 3 distinct sources (now 2)." in feedback


def test_length_limits_default_and_from_constraints() -> None:
    """Defaults apply without constraints; a max-words constraint overrides them."""
    assert _report(GOOD).as_dict()["length"]
    words = parse_draft(GOOD).word_count()
    assert (
        f"[too-long] Cut to at most 50 words (now {words})."
        in _report(GOOD, ["max words: 50"]).feedback()
    )
    too_short = _report(GOOD, limits=RubricLimits(min_words=200)).feedback()
    assert f"[too-short] Expand to at least 200 words (now {words})." in too_short


def test_banned_terms_are_located() -> None:
    """A banned term is reported with every place it occurs, matched by stem."""
    feedback = _report(GOOD, ["avoid: partitions, workflow"]).feedback()
    assert '[banned] Remove "partitions" (paragraph 2).' in feedback
    assert '[banned] Remove "workflow" (paragraphs 1, 2).' in feedback


def test_required_mentions_and_gaps() -> None:
    """A missing required term fails; declaring it as a gap satisfies the check with a note."""
    assert (
        '[must-mention] Mention "GDPR": the constraints require it.'
        in _report(GOOD, ["must mention: GDPR"]).feedback()
    )
    with_gap = GOOD.replace(
        "## Sources", '## Gaps\n\n- The sources do not cover "GDPR".\n\n## Sources'
    )
    report = _report(with_gap, ["must mention: GDPR"])
    assert report.approved
    assert '[note] "GDPR" appears only as a gap: the sources do not cover it.' in report.feedback()


def test_free_text_constraints_are_informational() -> None:
    """Unrecognised constraints become notes and do not affect the verdict."""
    report = _report(GOOD, ["use a friendly tone"])
    assert report.approved
    assert report.feedback() == ['[note] Not checked automatically: "use a friendly tone".']


def test_feedback_lines_parse_back_into_findings() -> None:
    """Every tagged line carries its tag, term, limit and paragraph in machine-readable form."""
    finding = parse_finding('[banned] Remove "simply" (paragraph 2).')
    assert finding is not None
    assert (finding.tag, finding.term) == ("banned", "simply")
    too_long = parse_finding("[too-long] Cut to at most 150 words (now 412).")
    assert too_long is not None
    assert too_long.limit == 150
    uncited = parse_finding("[uncited] Paragraph 3 cites no source.")
    assert uncited is not None
    assert uncited.paragraph == 3
    assert parse_finding("no tag here") is None


async def test_critique_result_carries_verdict_checks_and_review() -> None:
    """The critic returns the rubric's verdict, score and checks, plus a [review] line."""
    result = await critique_draft(
        critique_task(GOOD, constraints=["avoid: simply", "max words: 50"]), MODEL
    )
    assert result.verdict == "revise"
    assert result.score == 0.8333
    assert result.checks["length"] is False
    assert result.feedback[0].startswith("[too-long] Cut to at most 50 words")
    assert result.feedback[-1].startswith(
        "[review] The draft needs revision: it passes 5 of 6 checks"
    )
    assert result.provenance.strategy_version == "rubric-template/1"


async def test_approved_draft() -> None:
    """A draft that passes every check is approved with score 1."""
    result = await critique_draft(critique_task(GOOD), MODEL)
    assert (result.verdict, result.score) == ("approved", 1.0)
    assert [f.split("]")[0] for f in result.feedback] == ["[review"]


async def test_critique_is_deterministic() -> None:
    """The same critique task twice gives identical results."""
    task = critique_task(GOOD, constraints=["avoid: workflow", "must mention: GDPR"])
    assert await critique_draft(task, MODEL) == await critique_draft(task, MODEL)


async def test_an_unknown_inline_citation_is_sent_back() -> None:
    """A marker that is not one of the task's sources fails citations_known, so: revise."""
    forged = GOOD.replace("on one partition.", "on one partition [fake-source].")
    result = await critique_draft(critique_task(forged), MODEL)
    assert result.verdict == "revise"
    assert result.checks["citations_known"] is False
    assert result.checks["citations"] is True
    assert result.feedback[0] == (
        '[unknown-source] Paragraph 2 cites "fake-source", which is not among the sources.'
    )


@pytest.mark.parametrize(
    ("edit", "line"),
    [
        (
            ("# Event store and Kafka topics", "# Event store and Kafka topics [fake-source]"),
            '[unknown-source] The title cites "fake-source", which is not among the sources.',
        ),
        (
            ("## Sources", "## Gaps\n\n- Retention [fake-source].\n\n## Sources"),
            '[unknown-source] The Gaps section cites "fake-source", which is not among the '
            "sources.",
        ),
        (
            ("Services talk", "## Topics [fake-source]\n\nServices talk"),
            '[unknown-source] A heading cites "fake-source", which is not among the sources.',
        ),
        (
            ("newer events.", "newer events [fake source]."),
            '[unknown-source] Paragraph 1 cites "fake source", which is not among the sources.',
        ),
    ],
)
def test_markers_outside_body_citations_are_checked_too(edit: tuple[str, str], line: str) -> None:
    """Title, heading, gap and look-alike "[a b]" markers must be known sources as well."""
    report = _report(GOOD.replace(*edit))
    assert not report.approved
    assert not report.as_dict()["citations_known"]
    assert line in report.feedback()


def test_links_and_code_are_not_citations() -> None:
    """A Markdown link and a fenced code block carry no citation markers."""
    draft = GOOD.replace("newer events.", "newer events, see [the guide](http://x).").replace(
        "## Sources", "```\nitems[0]\n```\n\n## Sources"
    )
    assert _report(draft).approved


def test_sources_list_must_match_the_inline_citations() -> None:
    """A cited id missing from Sources, or a listed id nobody cites, fails citations_known."""
    draft = GOOD.replace("- [docs/design.md#2] Kafka topics", "- [docs/ops.md#1] Retention")
    report = _report(draft)
    assert report.as_dict() == {**dict.fromkeys(CHECKS, True), "citations_known": False}
    assert report.feedback() == [
        '[sources-list] List "docs/design.md#2" under Sources: the report cites it.',
        '[sources-list] Drop "docs/ops.md#1" from Sources: the report does not cite it.',
    ]
    finding = parse_finding(report.feedback()[0])
    assert finding is not None
    assert (finding.tag, finding.term) == ("sources-list", "docs/design.md#2")


async def test_a_writer_result_whose_cited_ids_differ_from_its_markers_is_sent_back() -> None:
    """The Sources list renders cited_source_ids; a list that disagrees with the text: revise."""
    result = await write_draft(write_task(), MODEL)
    parsed = parse_draft(result.draft)
    assert list(parsed.sources) == result.cited_source_ids == parsed.marker_ids()
    dropped = result.cited_source_ids[-1]
    tampered = render_draft(
        parsed.title,
        result.draft.split("\n\n", 1)[1].split("## Sources")[0],
        [(sid, "t") for sid in result.cited_source_ids[:-1]],
    )
    verdict = await critique_draft(critique_task(tampered), MODEL)
    assert verdict.verdict == "revise"
    assert verdict.checks["citations_known"] is False
    assert f'[sources-list] List "{dropped}" under Sources: the report cites it.' in (
        verdict.feedback
    )


def test_cited_sources_reads_what_a_reader_sees() -> None:
    """cited_sources lists every inline id in order, ignoring the Sources list and code."""
    draft = "# T\n\nA. [b#1] [a#1]\n\n```\nx[0]\n```\n\n## Sources\n\n- [z#9] Z\n"
    assert cited_sources(draft) == ["b#1", "a#1"]


async def test_the_writer_clears_forged_markers_from_the_critics_feedback() -> None:
    """Forged markers in a gap and as a look-alike are sent back, and the revision is approved."""
    first = await write_draft(write_task(), MODEL)
    forged = first.draft.replace(
        "## Sources", "## Gaps\n\n- Retention is covered by [fake-source].\n\n## Sources"
    ).replace("newer events.", "newer events [fake source].", 1)
    verdict = await critique_draft(critique_task(forged), MODEL)
    assert verdict.verdict == "revise"
    assert [f.split("]")[0] for f in verdict.feedback] == ["[unknown-source"] * 2 + ["[review"]
    revised = await write_draft(
        write_task(feedback=verdict.feedback, previous_draft=forged, revision=1), MODEL
    )
    again = await critique_draft(critique_task(revised.draft, revision=1), MODEL)
    assert again.verdict == "approved"
    assert cited_sources(revised.draft) == revised.cited_source_ids
