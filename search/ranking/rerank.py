"""Re-ranking: a cross-encoder reads the query with each top candidate's passage.

The bi-encoder and keyword legs retrieve; a cross-encoder, which sees query
and passage together, re-orders the top ``RERANK_CANDIDATES`` of them. No
multilingual cross-encoder ships its weights on the package index, so none is
bundled: ``RERANK_MODEL`` names a local sentence-transformers CrossEncoder
directory (for example mmarco-mMiniLMv2 copied onto the server), loaded
offline. Without it, re-ranking is unavailable and searches say so.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from config.routers import read_connection

if TYPE_CHECKING:
    from collections.abc import Sequence

    from search.ranking.backends import SearchHit

logger = logging.getLogger(__name__)

#: Characters of a candidate's passage the cross-encoder reads.
PASSAGE_CHARS = 1500
UNAVAILABLE = (
    "Re-ranking is not available: no cross-encoder is configured (set RERANK_MODEL "
    "to a local model directory); results are in hybrid order."
)


class RerankerUnavailable(Exception):
    """No cross-encoder is configured, or the configured one cannot be loaded."""


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder read from a local directory."""

    def __init__(self, path: str | Path, *, batch_size: int = 16) -> None:
        from sentence_transformers import CrossEncoder

        path = Path(path)
        if not path.is_dir():
            raise RerankerUnavailable(f"RERANK_MODEL {path} is not a directory.")
        try:
            self._model = CrossEncoder(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise RerankerUnavailable(f"RERANK_MODEL {path} cannot be loaded: {exc}") from exc
        self.name = path.name
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """One relevance score per passage, higher is better."""
        if not passages:
            return []
        pairs = [(query, passage) for passage in passages]
        with self._lock:  # torch modules are not re-entrant across threads.
            scores = self._model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False)
        return [float(s) for s in scores]


@functools.cache
def _load(path: str) -> CrossEncoderReranker:
    return CrossEncoderReranker(path)


def get_reranker() -> CrossEncoderReranker:
    """The configured cross-encoder (loaded once); raises RerankerUnavailable."""
    path = settings.RERANK_MODEL
    if not path:
        raise RerankerUnavailable(UNAVAILABLE)
    return _load(path)


def rerank_available() -> bool:
    try:
        get_reranker()
    except RerankerUnavailable:
        return False
    return True


def rerank_hits(
    query: str,
    hits: Sequence[SearchHit],
    *,
    reranker: CrossEncoderReranker | None = None,
    candidates: int | None = None,
) -> tuple[list[SearchHit], float]:
    """Re-order the first ``candidates`` hits by cross-encoder score.

    Each candidate is read as its title and best passage (the chunk the
    semantic leg matched, else the document's first). Hits beyond the
    candidates keep their order after them. Returns the hits, renumbered, and
    the milliseconds spent.
    """
    started = time.perf_counter()
    reranker = reranker or get_reranker()
    n = candidates or settings.RERANK_CANDIDATES
    head, tail = list(hits[:n]), list(hits[n:])
    if not head:
        return [], 0.0
    passages = _passages(head)
    scores = reranker.score(query, [passages.get(hit.document_id, "") for hit in head])
    order = sorted(range(len(head)), key=lambda i: (-scores[i], head[i].rank))
    reranked = [
        dataclasses.replace(head[i], rank=position, rerank_rank=position, rerank_score=scores[i])
        for position, i in enumerate(order, start=1)
    ]
    reranked += [
        dataclasses.replace(hit, rank=len(reranked) + offset)
        for offset, hit in enumerate(tail, start=1)
    ]
    return reranked, (time.perf_counter() - started) * 1000


def _passages(hits: Sequence[SearchHit]) -> dict[int, str]:
    """Title and passage per hit's document: its matched chunk or its first."""
    with read_connection().cursor() as cursor:
        cursor.execute(
            """
            SELECT d.id, d.title, coalesce(c.text, substr(d.text, 1, %s))
            FROM documents_document d
            LEFT JOIN LATERAL (
                SELECT text FROM documents_chunk c
                WHERE c.document_id = d.id AND c.embedding_model = d.embedding_model
                ORDER BY (c.id = ANY(%s)) DESC, c.position
                LIMIT 1
            ) c ON true
            WHERE d.id = ANY(%s)
            """,
            [
                PASSAGE_CHARS,
                [h.chunk_id for h in hits if h.chunk_id],
                [h.document_id for h in hits],
            ],
        )
        rows = cursor.fetchall()
    return {
        doc_id: f"{title}\n{(text or '')[:PASSAGE_CHARS]}".strip() for doc_id, title, text in rows
    }
