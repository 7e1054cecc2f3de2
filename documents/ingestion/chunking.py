"""Split document text into token-bounded, overlapping chunks for embedding.

Chunks follow sentence and paragraph boundaries (English and Korean), every
chunk is an exact slice of the input text, and no chunk exceeds the token
budget according to the caller's tokenizer. The tokenizer is only ever called
with batches, because per-sentence calls dominate ingestion time otherwise.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Final

logger = logging.getLogger(__name__)

__all__ = ["TextChunk", "TokenCounter", "chunk_text", "split_sentences"]

TokenCounter = Callable[[Sequence[str]], list[int]]
"""Return the token count of each string (without special tokens), in order."""

# Sentence-final punctuation: ASCII, ellipsis, CJK full stop, full-width ! and ?
# (escaped so that look-alike characters are explicit), double marks.
_TERMINATORS: Final = ".!?…。\uff01\uff1f‼⁇⁈⁉"
# Closing quotes/brackets that may follow a terminator: 'He said "Go."'
# (\u2019 is the right single quote, \u203a the single right angle quote).
_CLOSERS: Final = "\"'”\u2019»)]}」』〉》\u203a"
# Candidate boundaries are whitespace runs that either follow a terminator,
# closer or "다" (for "...니다" without a period), or contain a newline. The
# (?<!\s) guard anchors the newline branch at the start of a whitespace run,
# and the possessive quantifiers stop backtracking, so scanning is linear even
# for megabytes of spaces or dots.
_CANDIDATE_RE: Final = re.compile(
    "(?<=[" + re.escape(_TERMINATORS + _CLOSERS) + "다])\\s++|(?<!\\s)[^\\S\\n]*+\\n\\s*+"
)
# A line that starts like a list item or heading: its newline ends a segment.
_STRUCTURAL_LINE_RE: Final = re.compile(
    "(?:[-*+•◦▪‣·\u2013—]|\\d{1,3}[.)]|[A-Za-z][.)]|[가-힣][.)]|#{1,6})(?=\\s)"
)
_NON_SPACE_RE: Final = re.compile(r"\S+")
# A period after these does not end a sentence ("Dr. Kim", "e.g. this").
_ABBREVIATIONS: Final = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "e.g", "i.e", "cf", "fig"}
)
_ABBREVIATION_LOOKBACK: Final = 12
_MAX_CLOSERS: Final = 4

# End a chunk early at a paragraph break once it is this full.
_PARAGRAPH_FILL_RATIO: Final = 0.6
# Oversized sentences are cut into pieces of about max_tokens / this, so that
# the packer can still fill chunks well and carry pieces over as overlap.
_PIECES_PER_CHUNK: Final = 4

_ZERO_WIDTH_JOINER: Final = "\u200d"


@dataclass(frozen=True, slots=True)
class TextChunk:
    """One chunk of a document; ``text == document_text[start:end]``."""

    position: int
    text: str
    start: int
    end: int
    token_count: int


@dataclass(frozen=True, slots=True)
class _Unit:
    """An indivisible span used for packing (a sentence or part of one)."""

    start: int
    end: int
    tokens: int
    starts_paragraph: bool


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Return (start, end) spans of the sentence-like segments of ``text``.

    Spans are in order, non-empty and trimmed of surrounding whitespace.
    Segments end at paragraph breaks (blank lines), after sentence-final
    punctuation followed by whitespace (which covers Korean "다." "요." "죠."),
    after a formal "...니다" followed by whitespace, and at newlines that
    start or end a list item or heading. Segments only ever end at
    whitespace, so a base character is never separated from its combining
    marks or a Hangul syllable from its jamo. Runs in linear time.
    """
    spans: list[tuple[int, int]] = []
    # Start at the first visible character so the first span is trimmed too.
    segment_start = len(text) - len(text.lstrip())
    line_start = segment_start
    for match in _CANDIDATE_RE.finditer(text):
        ws_start, ws_end = match.span()
        newlines = text.count("\n", ws_start, ws_end)
        if newlines >= 2 or _ends_sentence(text, ws_start, line_start):
            is_boundary = True
        elif newlines == 1:
            is_boundary = bool(
                _STRUCTURAL_LINE_RE.match(text, line_start)
                or _STRUCTURAL_LINE_RE.match(text, ws_end)
            )
        else:
            is_boundary = False
        if newlines:
            line_start = ws_end
        if is_boundary:
            if ws_start > segment_start:
                spans.append((segment_start, ws_start))
            segment_start = ws_end
    tail = text[segment_start:].rstrip()
    if tail:
        spans.append((segment_start, segment_start + len(tail)))
    return spans


def chunk_text(
    text: str, *, count_tokens: TokenCounter, max_tokens: int, overlap_tokens: int
) -> list[TextChunk]:
    """Pack sentences into chunks of at most ``max_tokens`` tokens.

    Consecutive chunks share trailing sentences worth up to ``overlap_tokens``.
    Chunks prefer to end at paragraph breaks once reasonably full; sentences
    longer than the budget are cut at whitespace, or between characters when
    there is none. ``count_tokens`` is called a handful of times with batches,
    never once per sentence, and every reported ``token_count`` comes from
    counting the final chunk text itself.

    Raises:
        ValueError: for a non-positive ``max_tokens``, an ``overlap_tokens``
            outside ``[0, max_tokens)``, or a counter returning the wrong number
            of counts.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError(f"overlap_tokens must be in [0, {max_tokens}), got {overlap_tokens}")
    if not text.strip():
        return []

    spans = split_sentences(text)
    counts = _count(count_tokens, [text[start:end] for start, end in spans])
    units = _build_units(text, spans, counts, count_tokens, max_tokens, overlap_tokens)
    ranges = _pack(units, max_tokens, overlap_tokens)
    return _finalise(text, units, ranges, count_tokens, max_tokens)


def _count(count_tokens: TokenCounter, texts: Sequence[str]) -> list[int]:
    """Call the counter once for a batch and check its answer."""
    if not texts:
        return []
    counts = list(count_tokens(texts))
    if len(counts) != len(texts):
        raise ValueError(f"token counter returned {len(counts)} counts for {len(texts)} texts")
    return [int(count) for count in counts]


# --------------------------------------------------------------------------
# Sentence boundaries


def _ends_sentence(text: str, ws_start: int, line_start: int) -> bool:
    """Return True if the text just before ``ws_start`` ends a sentence."""
    if text.endswith("니다", 0, ws_start):
        return True
    pos = ws_start - 1
    # Look through a few closing quotes/brackets: '"Stop!" she said'.
    floor = max(ws_start - 1 - _MAX_CLOSERS, 0)
    while pos >= floor and text[pos] in _CLOSERS:
        pos -= 1
    if pos < 0 or text[pos] not in _TERMINATORS:
        return False
    if text[pos] == ".":
        return not _is_non_final_period(text, pos, line_start)
    return True


def _is_non_final_period(text: str, dot: int, line_start: int) -> bool:
    """Return True for periods after abbreviations, initials or list numbers."""
    window_start = max(dot - _ABBREVIATION_LOOKBACK, 0)
    window = text[window_start:dot]
    parts = window.split()
    if not parts:
        return False
    word = parts[-1]
    word_start = dot - len(word)
    if word_start == window_start and window_start > 0 and not text[window_start - 1].isspace():
        return False  # a long word: not an abbreviation or list marker
    is_marker = (word.isdigit() and len(word) <= 3) or (len(word) == 1 and word.isalpha())
    if word_start == line_start and is_marker:
        return True  # "1. First step" / "a. option" / "가. 항목"
    if len(word) == 1 and "A" <= word <= "Z":
        return True  # initials: "J. R. R. Tolkien"
    return word.lower() in _ABBREVIATIONS


# --------------------------------------------------------------------------
# Oversized sentences


def _build_units(
    text: str,
    spans: list[tuple[int, int]],
    counts: list[int],
    count_tokens: TokenCounter,
    max_tokens: int,
    overlap_tokens: int,
) -> list[_Unit]:
    """Turn sentence spans into packable units, cutting oversized ones."""
    units: list[_Unit] = []
    oversized: list[int] = []
    previous_end = 0
    for index, ((start, end), tokens) in enumerate(zip(spans, counts, strict=True)):
        # Checking the gap is linear overall: gaps never overlap.
        starts_paragraph = bool(units) and text.count("\n", previous_end, start) >= 2
        previous_end = end
        units.append(_Unit(start, end, tokens, starts_paragraph))
        if tokens > max_tokens:
            oversized.append(index)
    if not oversized:
        return units

    piece_tokens = max(1, max_tokens // _PIECES_PER_CHUNK)
    if overlap_tokens:
        # Pieces must be small enough to be carried over as overlap.
        piece_tokens = max(1, min(piece_tokens, overlap_tokens // 2))
    pieces = _cut_to_fit(
        text,
        [(units[i].start, units[i].end, units[i].tokens) for i in oversized],
        count_tokens,
        max_tokens,
        piece_tokens,
    )

    result: list[_Unit] = []
    cursor = 0
    for unit in units:
        if unit.tokens <= max_tokens:
            result.append(unit)
            continue
        # Pieces come back sorted by start, so each unit's pieces are the next
        # run of pieces that lie inside it.
        first = True
        while cursor < len(pieces) and pieces[cursor][0] < unit.end:
            start, end, tokens = pieces[cursor]
            result.append(_Unit(start, end, tokens, unit.starts_paragraph and first))
            first = False
            cursor += 1
    return result


def _cut_to_fit(
    text: str,
    spans: list[tuple[int, int, int]],
    count_tokens: TokenCounter,
    max_tokens: int,
    piece_tokens: int,
) -> list[tuple[int, int, int]]:
    """Cut (start, end, tokens) spans into pieces of at most ``max_tokens``.

    Each round cuts every still-oversized span using its own chars-per-token
    ratio and recounts all new pieces in one batch; pieces that still do not
    fit go round again. Returns (start, end, tokens) sorted by start.
    """
    done: list[tuple[int, int, int]] = []
    pending = spans
    while pending:
        candidates: list[tuple[int, int]] = []
        for start, end, tokens in pending:
            cuts = _cut_span(text, start, end, tokens, piece_tokens)
            if len(cuts) == 1:
                # A single grapheme over budget: nothing more can be done.
                logger.warning(
                    "Cannot split a %d-token span at %d below %d tokens",
                    tokens,
                    start,
                    max_tokens,
                )
                done.append((start, end, tokens))
            else:
                candidates.extend(cuts)
        counts = _count(count_tokens, [text[start:end] for start, end in candidates])
        pending = []
        for (start, end), tokens in zip(candidates, counts, strict=True):
            if tokens > max_tokens:
                pending.append((start, end, tokens))
            else:
                done.append((start, end, tokens))
    done.sort()
    return done


def _cut_span(
    text: str, start: int, end: int, tokens: int, piece_tokens: int
) -> list[tuple[int, int]]:
    """Cut one span into roughly ``piece_tokens``-sized pieces.

    Cuts go between words when the span has whitespace, otherwise between
    characters (never before a combining mark or inside a Hangul syllable).
    Returns ``[(start, end)]`` unchanged when no cut is possible.
    """
    chars_per_token = (end - start) / max(tokens, 1)
    target_chars = max(1, int(piece_tokens * chars_per_token))

    words = [match.span() for match in _NON_SPACE_RE.finditer(text, start, end)]
    if len(words) > 1:
        pieces: list[tuple[int, int]] = []
        piece_start, piece_end = words[0]
        for word_start, word_end in words[1:]:
            if word_end - piece_start > target_chars:
                pieces.append((piece_start, piece_end))
                piece_start = word_start
            piece_end = word_end
        pieces.append((piece_start, piece_end))
        if len(pieces) > 1:
            return pieces
        # The estimate put everything in one piece; fall back to halving at
        # the middle word so every round makes progress.
        middle = len(words) // 2
        return [(start, words[middle - 1][1]), (words[middle][0], end)]

    pieces = []
    piece_start = start
    cut = start + target_chars
    while cut < end:
        safe = _safe_cut(text, cut, piece_start, end)
        if safe is None:
            break
        cut = safe
        pieces.append((piece_start, cut))
        piece_start = cut
        cut = piece_start + target_chars
    pieces.append((piece_start, end))
    return pieces


def _safe_cut(text: str, cut: int, low: int, high: int) -> int | None:
    """Move ``cut`` to the nearest grapheme boundary strictly inside (low, high)."""
    for position in range(cut, high):
        if _is_boundary(text, position):
            return position
    for position in range(cut - 1, low, -1):
        if _is_boundary(text, position):
            return position
    return None


def _is_boundary(text: str, position: int) -> bool:
    """Return True if a cut between position-1 and position keeps graphemes whole."""
    char = text[position]
    if text[position - 1] == _ZERO_WIDTH_JOINER or char == _ZERO_WIDTH_JOINER:
        return False
    code = ord(char)
    # Hangul medial vowels and final consonants (decomposed syllables), and
    # emoji skin-tone modifiers, belong to the character before them.
    if 0x1160 <= code <= 0x11FF or 0xD7B0 <= code <= 0xD7FF or 0x1F3FB <= code <= 0x1F3FF:
        return False
    return unicodedata.category(char) not in {"Mn", "Mc", "Me"}


# --------------------------------------------------------------------------
# Packing


def _pack(units: list[_Unit], max_tokens: int, overlap_tokens: int) -> list[tuple[int, int]]:
    """Greedily group units into [first, last) ranges with overlap."""
    count = len(units)
    tokens = [unit.tokens for unit in units]
    prefix = [0, *accumulate(tokens)]
    # paragraph_end[i]: index one past the last unit of the paragraph holding i.
    paragraph_end = [count] * count
    for index in range(count - 2, -1, -1):
        next_starts = units[index + 1].starts_paragraph
        paragraph_end[index] = index + 1 if next_starts else paragraph_end[index + 1]
    fill_threshold = _PARAGRAPH_FILL_RATIO * max_tokens

    ranges: list[tuple[int, int]] = []
    first = 0
    while first < count:
        last = first
        total = 0
        while last < count and total + tokens[last] <= max_tokens:
            if last > first and units[last].starts_paragraph and total >= fill_threshold:
                paragraph_tokens = prefix[paragraph_end[last]] - prefix[last]
                if total + paragraph_tokens > max_tokens:
                    break  # end here rather than split the next paragraph
            total += tokens[last]
            last += 1
        # Units are at most max_tokens each (barring unsplittable graphemes),
        # so a chunk always holds at least one unit.
        last = max(last, first + 1)
        ranges.append((first, last))
        if last >= count:
            break
        # Carry trailing units over as overlap, but keep room for the next unit
        # and always move forward so the loop terminates.
        next_first = last
        carried = 0
        while next_first - 1 > first and carried + tokens[next_first - 1] <= overlap_tokens:
            next_first -= 1
            carried += tokens[next_first]
        while next_first < last and carried + tokens[last] > max_tokens:
            carried -= tokens[next_first]
            next_first += 1
        first = next_first
    return ranges


def _finalise(
    text: str,
    units: list[_Unit],
    ranges: list[tuple[int, int]],
    count_tokens: TokenCounter,
    max_tokens: int,
) -> list[TextChunk]:
    """Count the real chunk texts and split any chunk that went over budget."""
    # Tokenizers do not always count a concatenation as the sum of its parts,
    # so the packed estimate is verified on the exact chunk text.
    counts = _count(count_tokens, [_range_text(text, units, r) for r in ranges])
    counted = list(zip(ranges, counts, strict=True))
    while True:
        over = {
            index
            for index, ((first, last), tokens) in enumerate(counted)
            if tokens > max_tokens and last - first > 1
        }
        if not over:
            break
        logger.debug("Re-splitting %d chunks over %d tokens", len(over), max_tokens)
        halves: list[tuple[int, int]] = []
        for index in sorted(over):
            first, last = counted[index][0]
            middle = _token_midpoint(units, first, last)
            halves.extend([(first, middle), (middle, last)])
        half_counts = iter(
            zip(
                halves,
                _count(count_tokens, [_range_text(text, units, r) for r in halves]),
                strict=True,
            )
        )
        expanded: list[tuple[tuple[int, int], int]] = []
        for index, item in enumerate(counted):
            if index in over:
                expanded.extend([next(half_counts), next(half_counts)])
            else:
                expanded.append(item)
        counted = expanded

    chunks: list[TextChunk] = []
    covered_until = -1
    for (first, last), tokens in counted:
        start, end = units[first].start, units[last - 1].end
        if end <= covered_until:
            # A re-split half can fall entirely inside the previous chunk's
            # overlap; it would only duplicate text.
            continue
        covered_until = end
        chunks.append(TextChunk(len(chunks), text[start:end], start, end, tokens))
    return chunks


def _range_text(text: str, units: list[_Unit], unit_range: tuple[int, int]) -> str:
    """Return the text covered by units[first:last]."""
    first, last = unit_range
    return text[units[first].start : units[last - 1].end]


def _token_midpoint(units: list[_Unit], first: int, last: int) -> int:
    """Return the index that splits units[first:last] into two token halves."""
    total = sum(unit.tokens for unit in units[first:last])
    running = 0
    for index in range(first, last - 1):
        running += units[index].tokens
        if running * 2 >= total:
            return index + 1
    return last - 1
