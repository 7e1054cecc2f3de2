"""Keyword search: BM25 over analysed terms (Korean morphemes, English stems)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from config.routers import read_connection
from search.ranking.backends.base import BackendResult, SearchBackend, SearchHit, SearchMode
from search.ranking.backends.sql import base_cte, compose, keyword_ctes

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from documents.models import Document
    from search.ranking.query import ParsedQuery


class KeywordBackend(SearchBackend):
    mode = SearchMode.KEYWORD

    def search(
        self, query: ParsedQuery, *, queryset: QuerySet[Document], limit: int
    ) -> BackendResult:
        if query.is_empty:
            return BackendResult(hits=[])
        started = time.perf_counter()
        sql, params = compose(
            base_cte(queryset, query),
            keyword_ctes(query, limit=limit),
            select=("SELECT document_id, score, rank, total FROM kw ORDER BY rank", []),
        )
        with read_connection().cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        hits = [
            SearchHit(
                document_id=doc_id,
                score=float(score),
                rank=int(rank),
                keyword_rank=int(rank),
                keyword_score=float(score),
            )
            for doc_id, score, rank, _total in rows
        ]
        result = BackendResult(hits=hits)
        result.timings["keyword_ms"] = (time.perf_counter() - started) * 1000
        result.total = int(rows[0][3]) if rows else 0
        return result
