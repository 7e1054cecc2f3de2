"""Semantic search: the query embedding against chunk embeddings (HNSW)."""

from __future__ import annotations

import dataclasses
import threading
import time
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from django.conf import settings
from pgvector import Vector

from config.routers import read_connection, read_cursor
from documents.analysis import detect_language
from documents.embeddings import COMPANION_LANGUAGES, get_companion
from documents.selectors import search_embedder
from search.ranking import centroids
from search.ranking.backends.base import BackendResult, SearchBackend, SearchHit, SearchMode
from search.ranking.backends.sql import (
    VectorQuery,
    base_cte,
    base_query,
    compose,
    semantic_ctes,
    visible_chunks_query,
)

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from documents.embeddings import EmbeddingProvider
    from documents.models import Document
    from search.ranking.query import ParsedQuery

#: Chunks fetched per wanted document (several chunks can share a document).
CHUNKS_PER_DOCUMENT: Final = 3


#: Query embeddings kept per process: the UI searches the same text again for
#: every page, filter, sort or mode change, and the model is the slow part.
QUERY_CACHE_SIZE: Final = 512
#: Per provider object: a provider swapped in (a new model) starts empty.
_query_caches: weakref.WeakKeyDictionary[Any, OrderedDict[tuple[str, str], VectorQuery]] = (
    weakref.WeakKeyDictionary()
)
_query_cache_lock = threading.Lock()


def embed_query(
    text: str,
    embedder: EmbeddingProvider | None = None,
    companion: EmbeddingProvider | None = None,
) -> tuple[VectorQuery, float]:
    """Embed a query for the chunks search uses now; return it and the time (ms).

    The provider is the one of the model whose chunks are searched (the
    configured model, or the earlier one while a re-embed is under way), so
    a query vector is only ever compared with vectors of its own model;
    ``embedder`` is that provider when the caller looked it up already (it
    reads the database, which a worker thread must not), and ``companion``
    the companion model (:func:`query_companion`), which embeds the query at
    the same time on another thread. A query embedded recently by the same
    providers comes from a small LRU cache.
    """
    embedder = embedder or search_embedder()
    key = (text, companion.name if companion is not None else "")
    started = time.perf_counter()
    with _query_cache_lock:
        cache = _query_caches.setdefault(embedder, OrderedDict())
        cached = cache.get(key)
        if cached is not None:
            cache.move_to_end(key)
    if cached is None:
        pending = _companion_pool().submit(companion.embed_query, text) if companion else None
        vector = embedder.embed_query(text)
        cached = VectorQuery(
            vector=Vector(vector), dimensions=embedder.dimensions, model=embedder.name
        )
        if companion is not None and pending is not None:
            cached = dataclasses.replace(
                cached,
                companion=Vector(pending.result()),
                companion_model=companion.name,
                companion_weight=float(settings.EMBEDDING_COMPANION_WEIGHT),
            )
        with _query_cache_lock:
            cache[key] = cached
            while len(cache) > QUERY_CACHE_SIZE:
                cache.popitem(last=False)
    return cached, (time.perf_counter() - started) * 1000


def query_companion(text: str) -> EmbeddingProvider | None:
    """The companion model, if it reads ``text``'s language (English)."""
    companion = get_companion()
    if companion is None or detect_language(text) not in COMPANION_LANGUAGES:
        return None
    return companion


_companion_executor: ThreadPoolExecutor | None = None


def _companion_pool() -> ThreadPoolExecutor:
    """Threads that embed queries with the companion model while the main
    model embeds them (torch releases the GIL)."""
    global _companion_executor
    with _query_cache_lock:
        if _companion_executor is None:
            _companion_executor = ThreadPoolExecutor(4, thread_name_prefix="query-companion")
        return _companion_executor


def with_language_shifts(vector: VectorQuery) -> VectorQuery:
    """``vector`` with the distance shifts of its language groups, if it needs them.

    The similarity of a chunk becomes ``cos(q, c) - a * (q . m_g - max_h q . m_h)``
    where ``m_g`` is the mean vector of the chunk's language group and ``a``
    the model's ``language_centering``: the group nearest the query (usually
    its own language) keeps plain cosines, and the other group is lifted by
    how much further its texts lie from the query on average. Within a
    group the shift is a constant, so a collection of one language ranks
    exactly as without it.
    """
    centering = float(search_embedder().language_centering)
    if centering <= 0:
        return vector
    means = centroids.language_centroids(vector.model, vector.dimensions)
    if len(means) < 2:
        return dataclasses.replace(vector, shifts=None)
    query = np.asarray(vector.vector.to_numpy(), dtype=np.float32)
    background = {group: float(query @ mean) for group, mean in means.items()}
    nearest = max(background.values())
    shifts = tuple(centering * (background[group] - nearest) for group in (True, False))
    return dataclasses.replace(vector, shifts=(shifts[0], shifts[1]))


def clear_query_cache() -> None:
    """Forget cached query embeddings (benchmarks time the model, not the cache)."""
    with _query_cache_lock:
        _query_caches.clear()


def set_hnsw_options(cursor: Any) -> None:
    """Search settings for this transaction: recall-oriented ef_search, and
    iterative scans so filtered queries still return k rows (pgvector 0.8)."""
    ef_search = int(settings.SEARCH_HNSW_EF_SEARCH)
    cursor.execute(f"SET LOCAL hnsw.ef_search = {ef_search}")
    cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")


def exact_scan_needed(
    query: ParsedQuery,
    vector: VectorQuery,
    *,
    queryset: QuerySet[Document],
    scanned: int,
    wanted: int,
) -> bool:
    """Whether an exact scan could find chunks that the index scan did not.

    The index scan stops after ``hnsw.max_scan_tuples``; with a very selective
    filter that can be before ``wanted`` chunks were found, and an exact scan
    over the few visible chunks never misses. But a short scan of a small
    collection has simply returned every chunk the user may see: an exact
    scan would repeat it (and, in hybrid mode, the keyword leg with it).
    """
    if scanned >= wanted:
        return False
    with read_connection().cursor() as cursor:
        cursor.execute(*visible_chunks_query(vector, base=base_query(queryset, query)))
        (visible,) = cursor.fetchone()
    return scanned < visible


class SemanticBackend(SearchBackend):
    mode = SearchMode.SEMANTIC

    def search(
        self, query: ParsedQuery, *, queryset: QuerySet[Document], limit: int
    ) -> BackendResult:
        text = query.semantic_text
        if query.is_empty or not text:
            # Same emptiness as the other modes: "-", "the" or "OR" alone are
            # no search, not a request for the nearest documents to noise.
            return BackendResult(hits=[])
        vector, embed_ms = embed_query(text, companion=query_companion(text))
        started = time.perf_counter()
        vector = with_language_shifts(vector)
        rows, scanned = self._nearest(query, vector, queryset=queryset, limit=limit)
        if len(rows) < limit and exact_scan_needed(
            query,
            vector,
            queryset=queryset,
            scanned=scanned,
            wanted=limit * CHUNKS_PER_DOCUMENT,
        ):
            vector = dataclasses.replace(vector, exact=True)
            rows, _ = self._nearest(query, vector, queryset=queryset, limit=limit)
        hits = [
            SearchHit(
                document_id=doc_id,
                score=float(score),
                rank=int(rank),
                semantic_rank=int(rank),
                semantic_score=float(score),
                chunk_id=chunk_id,
                chunk_matches=int(matches),
            )
            for doc_id, chunk_id, score, rank, matches, _ in rows
        ]
        result = BackendResult(hits=hits, total=len(hits))
        result.timings["embed_ms"] = embed_ms
        result.timings["semantic_ms"] = (time.perf_counter() - started) * 1000
        if vector.exact:
            result.notes.append("exact-scan")
        return result

    def _nearest(
        self, query: ParsedQuery, vector: VectorQuery, *, queryset: QuerySet[Document], limit: int
    ) -> tuple[list[tuple[Any, ...]], int]:
        """Nearest documents, and how many chunks the scan returned."""
        sql, params = compose(
            base_cte(queryset, query),
            semantic_ctes(
                vector,
                base=base_query(queryset, query),
                chunk_limit=limit * CHUNKS_PER_DOCUMENT,
                limit=limit,
            ),
            select=(
                "SELECT document_id, chunk_id, score, rank, matches,"
                " (SELECT count(*) FROM sem_nn) FROM sem ORDER BY rank",
                [],
            ),
        )
        with read_cursor(atomic=True) as cursor:
            set_hnsw_options(cursor)
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return rows, (int(rows[0][5]) if rows else 0)
