"""Hybrid search: the keyword leg while the query is embedded, then the semantic
leg fused with it in one SQL statement."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent import futures
from typing import TYPE_CHECKING, Any

from django.conf import settings

from config.routers import read_cursor
from documents.analysis import detect_language
from documents.selectors import search_embedder
from search.ranking.backends.base import BackendResult, SearchBackend, SearchHit, SearchMode
from search.ranking.backends.semantic import (
    CHUNKS_PER_DOCUMENT,
    embed_query,
    exact_scan_needed,
    query_companion,
    set_hnsw_options,
    with_language_shifts,
)
from search.ranking.backends.sql import (
    Fragment,
    VectorQuery,
    base_cte,
    base_query,
    compose,
    hybrid_select,
    keyword_bound_cte,
    keyword_ctes,
    semantic_ctes,
    semantic_fill_cte,
)

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from documents.models import Document
    from search.ranking.query import ParsedQuery


def semantic_weight_for(text: str) -> float:
    """Weight of the semantic leg for a query, by its language.

    The provider says how much its model deserves per language (all-MiniLM
    reads no Korean, so a Korean query is ranked by keywords alone). A query
    mixing Korean and English gets the lesser weight of the two: a model that
    cannot read part of a query should not reorder its results.
    """
    if settings.SEARCH_SEMANTIC_WEIGHT is not None:
        return float(settings.SEARCH_SEMANTIC_WEIGHT)
    weights = search_embedder().semantic_weights
    language = detect_language(text)
    if language == "mixed":
        return min(weights.get("ko", 0.0), weights.get("en", 0.0))
    return weights.get(language, 0.0)


class HybridBackend(SearchBackend):
    mode = SearchMode.HYBRID

    def search(
        self, query: ParsedQuery, *, queryset: QuerySet[Document], limit: int
    ) -> BackendResult:
        if query.is_empty:
            return BackendResult(hits=[])
        from search.ranking.backends.keyword import KeywordBackend

        weight = semantic_weight_for(query.semantic_text)
        if weight <= 0:
            # The model has no say for this language: skip embedding the query.
            result = KeywordBackend().search(query, queryset=queryset, limit=limit)
            result.notes.append(
                "keyword-only: the embedding model does not read this query's language"
            )
            return result
        candidates = max(limit, settings.SEARCH_CANDIDATES)
        # The query is embedded on a worker thread while the keyword leg runs
        # in the database (both release the GIL), so the model's time and
        # the keyword leg's overlap instead of adding up.
        embedder = search_embedder()
        pending = _embedding_pool().submit(
            embed_query, query.semantic_text, embedder, query_companion(query.semantic_text)
        )
        started = time.perf_counter()
        try:
            keyword = _keyword_leg(query, queryset, candidates)
        except BaseException:
            futures.wait([pending])
            raise
        keyword_ms = (time.perf_counter() - started) * 1000
        vector, embed_ms = pending.result()
        started = time.perf_counter()
        vector = with_language_shifts(vector)
        rows = self._fused(query, vector, queryset, keyword, candidates, limit, weight)
        if (not rows or rows[0][10] < candidates) and exact_scan_needed(
            query,
            vector,
            queryset=queryset,
            scanned=int(rows[0][9]) if rows else 0,
            wanted=candidates * CHUNKS_PER_DOCUMENT,
        ):
            # A selective filter starved the index scan: see exact_scan_needed.
            vector = dataclasses.replace(vector, exact=True)
            rows = self._fused(query, vector, queryset, keyword, candidates, limit, weight)
        hits = [
            SearchHit(
                document_id=row[0],
                score=float(row[1]),
                rank=index,
                keyword_rank=row[2],
                keyword_score=_float(row[3]),
                semantic_rank=row[4],
                semantic_score=_float(row[5]),
                chunk_id=row[6],
                chunk_matches=int(row[7]),
            )
            for index, row in enumerate(rows, start=1)
        ]
        result = BackendResult(hits=hits, total=int(rows[0][8]) if rows else 0)
        result.timings["embed_ms"] = embed_ms
        result.timings["keyword_ms"] = keyword_ms
        result.timings["hybrid_ms"] = (time.perf_counter() - started) * 1000
        return result

    def _fused(
        self,
        query: ParsedQuery,
        vector: VectorQuery,
        queryset: QuerySet[Document],
        keyword: KeywordLeg,
        candidates: int,
        limit: int,
        weight: float,
    ) -> list[tuple[Any, ...]]:
        """The semantic leg, fused with the keyword leg's ranking."""
        select_sql, select_params = hybrid_select(
            keyword_weight=1 - weight,
            semantic_weight=weight,
            fusion=settings.SEARCH_FUSION,
            limit=limit,
            candidate_counts=True,
        )
        sql, params = compose(
            keyword.ctes(),
            semantic_ctes(
                vector,
                base=base_query(queryset, query),
                chunk_limit=candidates * CHUNKS_PER_DOCUMENT,
                limit=candidates,
            ),
            semantic_fill_cte(vector),
            select=(select_sql, select_params),
        )
        with read_cursor(atomic=True) as cursor:
            set_hnsw_options(cursor)
            cursor.execute(sql, params)
            return cursor.fetchall()


@dataclasses.dataclass(frozen=True, slots=True)
class KeywordLeg:
    """The keyword leg's candidates, best first, and the query's BM25 bound."""

    document_ids: list[int]
    scores: list[float]
    bound: float

    def ctes(self) -> Fragment:
        """``kw(document_id, score, rank)`` and ``kw_bound(ub)`` as
        :func:`hybrid_select` reads them, from the values fetched."""
        sql = """
    kw AS (
        SELECT k.document_id, k.score, k.rank
        FROM unnest(%s::bigint[], %s::float8[]) WITH ORDINALITY AS k(document_id, score, rank)
    ),
    kw_bound AS (SELECT %s::float8 AS ub)"""
        return sql, [self.document_ids, self.scores, self.bound]


def _keyword_leg(query: ParsedQuery, queryset: QuerySet[Document], candidates: int) -> KeywordLeg:
    """Run the keyword leg alone: its best ``candidates`` documents and bound."""
    sql, params = compose(
        base_cte(queryset, query),
        keyword_ctes(query, limit=candidates),
        keyword_bound_cte(query),
        select=(
            """
    SELECT coalesce((SELECT array_agg(document_id ORDER BY rank) FROM kw), '{}'),
           coalesce((SELECT array_agg(score::float8 ORDER BY rank) FROM kw), '{}'),
           (SELECT ub FROM kw_bound)""",
            [],
        ),
    )
    with read_cursor() as cursor:
        cursor.execute(sql, params)
        document_ids, scores, bound = cursor.fetchone()
    return KeywordLeg(
        document_ids=list(document_ids), scores=[float(s) for s in scores], bound=float(bound or 0)
    )


_pool: futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _embedding_pool() -> futures.ThreadPoolExecutor:
    """Threads that embed hybrid queries (one per request served at once is
    plenty: the provider queues them on its own engines)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="query-embed")
        return _pool


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
