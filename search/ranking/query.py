"""Web-search query syntax: words, "exact phrases", OR, and -exclusions.

Words are analysed by :mod:`documents.analysis` exactly as documents are, so
``임베딩은`` matches ``임베딩을`` and ``policies`` matches ``policy``. Plain words
are alternatives ranked by BM25 (documents with more of them, rarer ones
especially, rank first); a quoted phrase must occur; a word or phrase after
``-`` must not. ``OR`` between words is accepted and changes nothing, since
words are already alternatives. Any input parses: unbalanced quotes close at
the end, metacharacters are separators, nothing raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from documents.analysis import analyze

#: Longest query kept; the rest is ignored (and the UI says so).
MAX_QUERY_CHARS: Final = 1000
MAX_TERMS: Final = 64

_TOKEN: Final = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_OR_WORDS: Final = frozenset({"or", "|", "||", "또는"})


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """A query reduced to analysed terms and constraints."""

    text: str
    terms: tuple[str, ...] = ()
    phrases: tuple[tuple[str, ...], ...] = ()
    excluded: tuple[str, ...] = ()
    excluded_phrases: tuple[tuple[str, ...], ...] = field(default=())
    truncated: bool = False

    @property
    def is_empty(self) -> bool:
        return not self.terms

    @property
    def semantic_text(self) -> str:
        """The query as the embedding model should read it (no operators)."""
        text = re.sub(r'(^|\s)-("[^"]*"?|\S+)', " ", self.text)
        text = re.sub(r'["]', " ", text)
        words = [w for w in text.split() if w.lower() not in _OR_WORDS]
        return " ".join(words)


def normalize_query(raw: str) -> tuple[str, bool]:
    """Collapse whitespace, drop control characters and cap the length."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in raw)
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > MAX_QUERY_CHARS:
        return cleaned[:MAX_QUERY_CHARS], True
    return cleaned, False


def parse_query(raw: str) -> ParsedQuery:
    """Parse what a user typed into terms, phrases and exclusions."""
    text, truncated = normalize_query(raw or "")
    terms: list[str] = []
    phrases: list[tuple[str, ...]] = []
    excluded: list[str] = []
    excluded_phrases: list[tuple[str, ...]] = []
    plain: list[str] = []
    for match in _TOKEN.finditer(text):
        negated, quoted, word = match.group(1), match.group(2), match.group(3)
        if quoted is not None and not negated:
            if analysed := tuple(analyze(quoted)):
                terms.extend(analysed)
                phrases.append(analysed)
        elif quoted is not None or (word.startswith("-") and len(word) > 1):
            # One excluded word can analyse to several terms ("-e-mail",
            # "-검색엔진"): they are excluded together, as a phrase, so that
            # documents merely containing "mail" or "검색" are kept.
            analysed = tuple(analyze(word[1:] if quoted is None else quoted))
            if len(analysed) > 1:
                excluded_phrases.append(analysed)
            else:
                excluded.extend(analysed)
        elif word.lower() in _OR_WORDS:
            continue
        else:
            plain.append(word)
    # Plain words are analysed together: Kiwi reads Korean better in context,
    # and this is how document text is analysed at index time.
    terms.extend(analyze(" ".join(plain)))
    excluded_set = set(excluded)
    kept = [t for t in dict.fromkeys(terms) if t not in excluded_set][:MAX_TERMS]
    return ParsedQuery(
        text=text,
        terms=tuple(kept),
        phrases=tuple(phrases),
        excluded=tuple(dict.fromkeys(excluded)),
        excluded_phrases=tuple(excluded_phrases),
        truncated=truncated,
    )


def phrase_tsquery(phrase: tuple[str, ...]) -> str:
    """A tsquery for terms in sequence (terms are from the safe alphabet)."""
    return " <-> ".join(f"'{term}'" for term in phrase)
