"""Plain-text tools every agent and the offline model share: tokens, stems, sentences, terms.

Everything here is pure and deterministic, so the critic and the writer agree on what a
"word", a "sentence" and a "mention of a term" are.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from functools import lru_cache

__all__ = [
    "CITATION",
    "INSTRUCTION_WORDS",
    "STOPWORDS",
    "citation_markers",
    "clip",
    "contains_term",
    "content_terms",
    "ensure_period",
    "estimate_tokens",
    "extract_citations",
    "key_terms",
    "markdown_sentences",
    "neutralize_markup",
    "normalize",
    "split_sentences",
    "stem",
    "tokenize",
    "word_count",
]

# Letters and digits of any script; inner apostrophes keep "don't" one token.
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
_BOUNDARY = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*\s+")
# A citation is a bracketed id without spaces that is not a Markdown link: "[docs/a.md#3]".
CITATION = re.compile(r"\[([^\[\]\s]{1,480})\](?!\()")
# What a reader takes for a citation: any bracketed text on one line that is not a link.
_BRACKETED = re.compile(r"\[([^\[\]\n]{1,480})\](?!\()")
_LINK = re.compile(r"!?\[([^\[\]\n]*)\]\([^()\n]*\)")
_BRACKETS = str.maketrans(
    {"[": "(", "]": ")", "\uff3b": "(", "\uff3d": ")", "\u3010": "(", "\u3011": ")"}
)
# Line starts that would make a block of their own in the report: headings, quotes, fences,
# table rows, and setext underlines (a line of "=" or "-" turns the line above into a heading).
_BLOCK_START = re.compile(r"^[ \t]*(?:#{1,6}(?=[ \t]|$)|>|`{3,}|~{3,}|\|)[ \t]*", re.MULTILINE)
_SETEXT = re.compile(r"^[ \t]*(?:=+|-+)[ \t]*$", re.MULTILINE)
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+")


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


_ABBREVIATIONS = _wordset(
    "e.g i.e etc vs cf fig no nr approx mr mrs ms dr prof inc ltd co st al eq resp"
)

STOPWORDS = _wordset(
    """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each either else
    ever every few for from further had has have having he her here hers herself him himself his
    how however i if in into is it its itself just let me more most much must my myself neither
    no nor not now of off on once only or other ought our ours ourselves out over own per quite
    rather same shall she should since so some such than that the their theirs them themselves
    then there these they this those though through thus to too under until up upon us very via
    was we were what whatever when where whether which while who whom whose why will with within
    without would yet you your yours yourself yourselves
    """
)

# Words that phrase a request rather than name its subject: "Write a short report on X"
# asks for X, so the critic must not demand that the draft say "write" or "report".
INSTRUCTION_WORDS = _wordset(
    """
    write written writing report reports summarize summarise summary explain explanation describe
    description overview outline discuss brief briefly short detailed detail give provide create
    produce draft list tell show please include including cover covering work works working use
    uses using used help guide introduction introduce note notes key main important compare
    comparison document documentation paragraph paragraphs section sections article essay
    """
)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (letters and digits of any script)."""
    return [match.group(0).casefold().replace("\u2019", "'") for match in _WORD.finditer(text)]


def word_count(text: str) -> int:
    """The number of word tokens; the unit of every length limit."""
    return sum(1 for _ in _WORD.finditer(text))


# Pure and called for every word of every text the critic and the offline model check (thousands
# per workflow, from a vocabulary of a few thousand words): cached rather than recomputed.
@lru_cache(maxsize=16_384)
def stem(word: str) -> str:
    """A light suffix-stripping stem: enough to match plurals and common verb forms.

    Deliberately conservative (no Porter step 2-5): it must never merge unrelated words, because
    the critic's banned-term check relies on it.
    """
    w = word.casefold()
    if w.endswith(("'s", "\u2019s")):
        w = w[:-2]
    if len(w) <= 3:
        return w
    if w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suffix in ("ing", "ed"):
        base = w[: -len(suffix)]
        if w.endswith(suffix) and len(base) >= 3 and any(ch in "aeiouy" for ch in base):
            w = base
            if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]
            break
    if w.endswith("ly") and len(w) > 5:
        w = w[:-2]
    if w.endswith("e") and len(w) > 4:
        w = w[:-1]
    return w


def content_terms(text: str) -> list[str]:
    """Stems of the non-stopword tokens, in order (duplicates kept: they are term frequency)."""
    return [stem(token) for token in tokenize(text) if _is_content(token)]


def _is_content(token: str) -> bool:
    return token not in STOPWORDS and (len(token) >= 3 or any(ch.isdigit() for ch in token))


def key_terms(text: str, limit: int = 8) -> list[str]:
    """The subject words of a goal, first occurrence first, one per stem, at most ``limit``."""
    seen: set[str] = set()
    terms: list[str] = []
    for token in tokenize(text):
        if not _is_content(token) or token in INSTRUCTION_WORDS:
            continue
        key = stem(token)
        if key in seen or key in INSTRUCTION_WORDS:
            continue
        seen.add(key)
        terms.append(token)
        if len(terms) == limit:
            break
    return terms


def contains_term(text: str, term: str) -> bool:
    """Whether ``text`` mentions ``term`` (a word or phrase), comparing stems in sequence."""
    needle = _stems(term)
    if not needle:
        return False
    haystack = _stems(text)
    if len(needle) == 1:
        return needle[0] in _stem_set(text)
    width = len(needle)
    return any(haystack[i : i + width] == needle for i in range(len(haystack) - width + 1))


# A draft or a passage is checked against every key term in turn: its stems are worked out once.
@lru_cache(maxsize=512)
def _stems(text: str) -> tuple[str, ...]:
    return tuple(stem(token) for token in tokenize(text))


@lru_cache(maxsize=512)
def _stem_set(text: str) -> frozenset[str]:
    return frozenset(_stems(text))


def normalize(text: str) -> str:
    """A comparison key for sentences: lower-cased tokens joined by single spaces."""
    return " ".join(tokenize(text))


def ensure_period(sentence: str) -> str:
    """The sentence with terminal punctuation, so list items read as sentences in prose."""
    stripped = sentence.rstrip()
    if not stripped or stripped[-1] in ".!?:;\"'\u201d\u2019)":
        return stripped
    return stripped + "."


def split_sentences(text: str) -> list[str]:
    """Split running prose into sentences, not breaking after abbreviations or initials."""
    flat = " ".join(text.split())
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(flat):
        end = match.end()
        if end >= len(flat) or not _starts_sentence(flat[end]):
            continue
        previous = flat[start : match.start()].rsplit(" ", 1)[-1].casefold().rstrip(".")
        if previous in _ABBREVIATIONS or (len(previous) == 1 and previous.isalpha()):
            continue
        sentences.append(flat[start:end].strip())
        start = end
    tail = flat[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _starts_sentence(char: str) -> bool:
    return char.isalnum() or char in "\"'\u201c\u2018([*`"


def markdown_sentences(text: str) -> list[str]:
    """Sentences of a Markdown fragment: prose and list items, without headings, code or tables."""
    sentences: list[str] = []
    for block in _markdown_blocks(text):
        sentences.extend(split_sentences(block))
    return sentences


def _markdown_blocks(text: str) -> Iterator[str]:
    """Prose blocks: paragraphs joined into one line, each list item its own block."""
    in_fence = False
    current: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(("```", "~~~")):
            in_fence = not in_fence
            yield from _flush(current)
            continue
        if in_fence or not line or line.startswith(("#", "|", "<!--", ">")):
            yield from _flush(current)
            if line.startswith(">"):  # a quote is prose too
                current.append(line.lstrip("> "))
            continue
        if _LIST_MARKER.match(line):
            yield from _flush(current)
            line = _LIST_MARKER.sub("", line, count=1)
        current.append(line)
    yield from _flush(current)


def _flush(lines: list[str]) -> Iterator[str]:
    if lines:
        yield " ".join(lines)
        lines.clear()


def estimate_tokens(*texts: str) -> int:
    """Estimated token count: one token per four characters (the usual English BPE ratio)."""
    return sum(math.ceil(len(text) / 4) for text in texts)


def extract_citations(text: str) -> tuple[str, list[str]]:
    """The text without its citation markers, and the cited ids in order of first use."""
    cited = list(dict.fromkeys(match.group(1) for match in CITATION.finditer(text)))
    return " ".join(CITATION.sub(" ", text).split()), cited


def citation_markers(text: str) -> list[str]:
    """Every bracketed id in ``text`` a reader would take for a citation, in order, repeats kept.

    Wider than ``CITATION``: "[fake source]" counts too, so a look-alike with a space cannot
    pass for prose. Markdown links and images are not markers.
    """
    found = (match.group(1).strip() for match in _BRACKETED.finditer(text))
    return [marker for marker in found if marker]


def neutralize_markup(text: str) -> str:
    """Untrusted text (a passage) made inert in a report: no citation markers, no blocks.

    Links and images become their text, "[id]" becomes "id" (repeatedly, so "[[id]]" cannot
    leave "[id]" behind), any other square bracket becomes a parenthesis, and heading, quote,
    fence and table markers at line starts are dropped. Words are kept, so the text still
    scores and reads the same; injected instructions stay what they are: plain text.
    """
    text = text.replace("\\[", "[").replace("\\]", "]")
    previous = None
    while previous != text:
        previous = text
        text = CITATION.sub(r"\1", _LINK.sub(r"\1", text))
    text = text.translate(_BRACKETS)
    previous = None
    while previous != text:  # "> ## x" hides a heading behind a quote
        previous = text
        text = _BLOCK_START.sub("", text)
    return _SETEXT.sub("", text)


def clip(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars``, at a line break or space when one is near."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    for separator in ("\n", " "):
        cut = head.rfind(separator)
        if cut >= max_chars // 2:
            return head[:cut].rstrip()
    return head
