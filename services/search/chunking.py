"""Split a Markdown or text document into passages for the search index (pure).

A heading always starts a new passage (its text becomes the passage title); within a section,
paragraphs are packed into passages of about ``min_chars``..``max_chars`` characters. A
paragraph longer than ``max_chars`` is split at sentence boundaries, a sentence longer than that
at a space. Fenced code blocks stay whole unless they alone exceed the maximum.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from shared.llm.text import clip, split_sentences

__all__ = ["Chunk", "chunk_document"]

_TITLE_CHARS = 200


@dataclass(frozen=True)
class Chunk:
    """One passage of a document: its 1-based ordinal, title and text."""

    ordinal: int
    title: str
    text: str


def chunk_document(
    text: str, *, default_title: str, min_chars: int = 300, max_chars: int = 900
) -> list[Chunk]:
    """The document's passages in order; headings without body text yield none."""
    chunks: list[Chunk] = []
    for title, paragraphs in _sections(text, default_title):
        for body in _pack(paragraphs, min_chars, max_chars):
            chunks.append(Chunk(len(chunks) + 1, clip(title, _TITLE_CHARS), body))
    return chunks


def _sections(text: str, default_title: str) -> Iterator[tuple[str, list[str]]]:
    """(title, paragraphs) per heading; paragraphs are blank-line separated, fences kept whole."""
    title = default_title
    paragraphs: list[str] = []
    current: list[str] = []
    in_fence = False

    def end_paragraph() -> None:
        if current:
            paragraphs.append("\n".join(current).strip())
            current.clear()

    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.rstrip()
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            if not in_fence:
                end_paragraph()
            current.append(line)
            in_fence = not in_fence
            if not in_fence:
                end_paragraph()
            continue
        if in_fence:
            current.append(line)
            continue
        if stripped.startswith("#") and stripped.lstrip("#").startswith(" "):
            end_paragraph()
            if paragraphs:
                yield title, paragraphs
            paragraphs = []
            title = stripped.lstrip("#").strip() or default_title
            continue
        if not stripped:
            end_paragraph()
        else:
            current.append(line)
    end_paragraph()
    if paragraphs:
        yield title, paragraphs


def _pack(paragraphs: list[str], min_chars: int, max_chars: int) -> Iterator[str]:
    """Whole paragraphs per passage until it reaches ``min_chars``, never over ``max_chars``."""
    current = ""
    for piece in (piece for p in paragraphs for piece in _fit(p, max_chars)):
        if current and (len(current) >= min_chars or len(current) + 2 + len(piece) > max_chars):
            yield current
            current = piece
        else:
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        yield current


def _fit(paragraph: str, max_chars: int) -> Iterator[str]:
    """The paragraph, or pieces of it no longer than ``max_chars``."""
    if len(paragraph) <= max_chars:
        yield paragraph
        return
    piece = ""
    for sentence in split_sentences(paragraph):
        for part in _hard_split(sentence, max_chars):
            joined = f"{piece} {part}" if piece else part
            if len(joined) > max_chars:
                yield piece
                piece = part
            else:
                piece = joined
    if piece:
        yield piece


def _hard_split(sentence: str, max_chars: int) -> Iterator[str]:
    while len(sentence) > max_chars:
        cut = sentence.rfind(" ", 0, max_chars)
        cut = cut if cut > max_chars // 2 else max_chars
        yield sentence[:cut].rstrip()
        sentence = sentence[cut:].lstrip()
    if sentence:
        yield sentence
