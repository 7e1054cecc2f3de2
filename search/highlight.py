"""Snippets with highlighted query terms, escaped for HTML.

Only the shown passage is scanned, so long documents cost nothing extra.
Everything is escaped; the only markup produced is ``<mark>``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

if TYPE_CHECKING:
    from collections.abc import Iterable

SNIPPET_CHARS: Final = 320
_WORD: Final = re.compile(r"\w+", re.UNICODE)


def _matches(word: str, terms: tuple[str, ...]) -> bool:
    # Terms are stems (English) or morphemes (Korean); a word in the text
    # matches when it starts with one: "policies" ~ "polici", "임베딩을" ~ "임베딩".
    lowered = word.lower()
    return any(lowered.startswith(term) for term in terms if len(term) >= 2 or term == lowered)


def highlight(text: str, terms: Iterable[str], *, max_chars: int = SNIPPET_CHARS) -> SafeString:
    """Escape ``text``, cut a window around the first hit, mark the hits."""
    term_tuple = tuple(t for t in terms if t)
    spans = [m.span() for m in _WORD.finditer(text) if term_tuple and _matches(m.group(), term_tuple)]
    start = 0
    if spans and len(text) > max_chars:
        start = max(0, spans[0][0] - max_chars // 4)
        # Start at a word boundary.
        while 0 < start < len(text) and text[start - 1].isalnum():
            start -= 1
    end = min(len(text), start + max_chars)
    while end < len(text) and end > start and text[end - 1].isalnum() and end - start < max_chars + 20:
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
