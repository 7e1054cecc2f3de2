"""Snippets with highlighted query terms, escaped for HTML.

Only the shown passage is scanned, so long documents cost nothing extra.
Everything is escaped; the only markup produced is ``<mark>``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from documents.analysis import analyze_many

if TYPE_CHECKING:
    from collections.abc import Iterable

SNIPPET_CHARS: Final = 320
_WORD: Final = re.compile(r"\w+", re.UNICODE)
_HANGUL: Final = re.compile("[\u1100-\u11ff\u3131-\u318e\uac00-\ud7a3]")


def _hit_spans(text: str, terms: Iterable[str]) -> list[tuple[int, int]]:
    """Spans of the words of ``text`` that analyse to one of ``terms``.

    Terms are stems (English) or morphemes (Korean), so each word is run
    through the same analyser as the index: "policy" and "policies" both
    match "polici", "임베딩을" matches "임베딩", "검색엔진은" matches "엔진",
    and "category" does not match "cat".
    """
    wanted = {t for t in terms if t}
    if not wanted:
        return []
    words = list(_WORD.finditer(text))
    # Latin words are stemmed cheaply (and "policy" does not contain
    # "polici"); a Korean word can only yield a morpheme it contains, so only
    # such words go through Kiwi, the slow part.
    distinct = [
        word
        for word in dict.fromkeys(m.group() for m in words)
        if _HANGUL.search(word) is None or any(t in word.lower() for t in wanted)
    ]
    hits = {
        word
        for word, word_terms in zip(distinct, analyze_many(distinct), strict=True)
        if wanted.intersection(word_terms)
    }
    return [m.span() for m in words if m.group() in hits]


def highlight(text: str, terms: Iterable[str], *, max_chars: int = SNIPPET_CHARS) -> SafeString:
    """Escape ``text``, cut a window around the first hit, mark the hits."""
    spans = _hit_spans(text, terms)
    start = 0
    if spans and len(text) > max_chars:
        start = max(0, spans[0][0] - max_chars // 4)
        # Start at a word boundary.
        while 0 < start < len(text) and text[start - 1].isalnum():
            start -= 1
    end = min(len(text), start + max_chars)
    while (
        end < len(text) and end > start and text[end - 1].isalnum() and end - start < max_chars + 20
    ):
        end += 1
    pieces: list[str] = ["… " if start > 0 else ""]
    cursor = start
    for s, e in spans:
        if s < start or e > end:
            continue
        pieces.append(escape(text[cursor:s]))
        pieces.append(f"<mark>{escape(text[s:e])}</mark>")
        cursor = e
    pieces.append(escape(text[cursor:end]))
    if end < len(text):
        pieces.append(" …")
    return mark_safe("".join(pieces))
