"""Splitting documents into search passages."""

from __future__ import annotations

from services.search.chunking import chunk_document


def test_headings_start_passages_and_name_them() -> None:
    """Each section becomes a passage titled by its heading; heading lines are not text."""
    doc = "Intro line.\n\n# Alpha\n\nFirst.\n\nSecond.\n\n## Beta\n\nThird.\n\n## Empty\n"
    chunks = chunk_document(doc, default_title="notes")
    assert [(c.ordinal, c.title, c.text) for c in chunks] == [
        (1, "notes", "Intro line."),
        (2, "Alpha", "First.\n\nSecond."),
        (3, "Beta", "Third."),
    ]


def test_paragraphs_pack_between_the_size_bounds() -> None:
    """Paragraphs join until a passage reaches the minimum, never passing the maximum."""
    paragraph = "word " * 40  # 200 characters
    chunks = chunk_document("\n\n".join([paragraph.strip()] * 6), default_title="t")
    assert [len(c.text) for c in chunks] == [400, 400, 400]


def test_long_paragraphs_split_at_sentences_then_spaces() -> None:
    """Oversized text is cut at sentence boundaries, or at spaces inside a giant sentence."""
    sentences = " ".join(f"Sentence number {n} is here." for n in range(60))
    giant = "x" * 50 + " " + "y " * 600
    chunks = chunk_document(f"{sentences}\n\n{giant}", default_title="t", max_chars=300)
    assert all(len(c.text) <= 300 for c in chunks)
    assert chunks[0].text.endswith("is here.")
    assert "".join(c.text for c in chunks).replace(" ", "").replace("\n", "") == (
        sentences + giant
    ).replace(" ", "")


def test_code_fences_stay_whole_and_hide_hash_lines() -> None:
    """A '#' line inside a code fence is code, not a heading."""
    doc = "# Setup\n\nRun this:\n\n```sh\n# not a heading\nmake\n\nmake test\n```\n"
    chunks = chunk_document(doc, default_title="t")
    assert len(chunks) == 1
    assert chunks[0].title == "Setup"
    assert "```sh\n# not a heading\nmake\n\nmake test\n```" in chunks[0].text


def test_plain_text_uses_the_default_title() -> None:
    """A text file without headings is titled by its name."""
    chunks = chunk_document("One.\r\n\r\nTwo.\r\n", default_title="runbook")
    assert [(c.title, c.text) for c in chunks] == [("runbook", "One.\n\nTwo.")]
