"""The offline reviewer: a short natural-language review composed from the rubric's results.

The verdict is the rubric's, never the model's; this text explains it in prose: what the draft
does well, what fails, and the fixes in the order the writer should apply them.
"""

from __future__ import annotations

import re

from shared.llm.contexts import CheckData, CritiqueContext

__all__ = ["review"]

_TAG = re.compile(r"^\[([a-z-]+)\]\s*")
# Removing text first, then adding, then resizing: the order the writer applies fixes in.
_FIX_ORDER = (
    "unknown-source",
    "sources-list",
    "banned",
    "uncited",
    "missing-term",
    "must-mention",
    "min-sources",
    "too-short",
    "too-long",
)


def review(context: CritiqueContext) -> str:
    """A review paragraph, then the fixes as a numbered list when there are any."""
    checks = context["checks"]
    passed = [c for c in checks if c["passed"]]
    failed = [c for c in checks if not c["passed"]]
    opening = (
        f"The draft is approved: it passes all {len(checks)} checks."
        if context["verdict"] == "approved"
        else f"The draft needs revision: it passes {len(passed)} of {len(checks)} checks "
        f"(score {context['score']:.2f})."
    )
    sentences = [opening]
    if passed:
        sentences.append("It " + _join([c["summary"] for c in passed]) + ".")
    if failed:
        sentences.append("However, it " + _join([c["summary"] for c in failed]) + ".")
    sentences.extend(_note_sentence(note) for note in context["notes"])
    fixes = _ordered_fixes(failed)
    text = " ".join(sentences)
    if fixes:
        text += "\n\nFix, in this order:\n" + "\n".join(f"{n}. {f}" for n, f in enumerate(fixes, 1))
    return text


def _ordered_fixes(failed: list[CheckData]) -> list[str]:
    findings = [f for check in failed for f in check["findings"]]

    def rank(finding: str) -> int:
        match = _TAG.match(finding)
        tag = match.group(1) if match else ""
        return _FIX_ORDER.index(tag) if tag in _FIX_ORDER else len(_FIX_ORDER)

    return [_TAG.sub("", f) for f in sorted(findings, key=rank)]


def _note_sentence(note: str) -> str:
    body = _TAG.sub("", note).rstrip(".")
    return f"Note: {body[:1].lower()}{body[1:]}."


def _join(parts: list[str]) -> str:
    if len(parts) <= 2:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + ", and " + parts[-1]
