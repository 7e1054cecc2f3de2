"""Related documents and near-duplicates: a document's nearest neighbours.

:mod:`~search.related.selectors` ranks the documents most like one document
(the document page and ``/api/documents/<id>/related``);
:mod:`~search.related.duplicates` lists pairs of near-copies (the admin's
duplicate report).
"""

from __future__ import annotations

from search.related.selectors import (
    DEFAULT_K,
    DEFAULT_METHOD,
    MAX_DUPLICATES,
    MAX_K,
    RelatedDocument,
    RelatedMethod,
    related_documents,
)

__all__ = [
    "DEFAULT_K",
    "DEFAULT_METHOD",
    "MAX_DUPLICATES",
    "MAX_K",
    "RelatedDocument",
    "RelatedMethod",
    "related_documents",
]
