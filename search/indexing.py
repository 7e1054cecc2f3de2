"""Keyword index terms of a document: the postings that BM25 ranks with."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Sequence

#: A title term counts as this many body occurrences (a simple BM25F: title
#: weighted above body, as the search issue asks).
TITLE_WEIGHT: Final = 2.0


def document_postings(
    *, title_terms: Sequence[str], body_terms: Sequence[str]
) -> tuple[dict[str, float], float]:
    """Return term frequencies and the document length for BM25."""
    postings: dict[str, float] = dict(Counter(body_terms))
    for term, count in Counter(title_terms).items():
        postings[term] = postings.get(term, 0.0) + TITLE_WEIGHT * count
    length = len(body_terms) + TITLE_WEIGHT * len(title_terms)
    return postings, length
