"""Helpers of the backend tests: search one backend directly, hit ids, batch indexing."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import connection

from documents.models import Document
from documents.services import documents_embed
from search.ranking.backends import (
    BackendResult,
    SearchFilters,
    SearchHit,
    SearchMode,
    get_search_backend,
)
from search.ranking.query import parse_query
from search.ranking.selectors import visible_documents


def run(
    mode: SearchMode | str,
    query: str,
    *,
    user: User | None,
    filters: SearchFilters | None = None,
    limit: int = 10,
) -> BackendResult:
    """Search as ``user`` through the backend of ``mode`` directly."""
    queryset = visible_documents(user, filters or SearchFilters())
    return get_search_backend(mode).search(parse_query(query), queryset=queryset, limit=limit)


def ids(result: BackendResult | list[SearchHit]) -> list[int]:
    hits = result.hits if isinstance(result, BackendResult) else result
    return [hit.document_id for hit in hits]


def embed_all(documents: list[Document]) -> None:
    """Index many documents in one batch (shared embedding calls)."""
    documents_embed(document_ids=[d.pk for d in documents])


def rebuild_chunk_indexes() -> None:
    """Rebuild the chunk indexes (inside the test's transaction).

    Rolled-back tests leave their chunks in the HNSW graphs as dead entries
    until a vacuum; an approximate scan over thousands of them can return a
    small test corpus's nearest chunk late (iterative scans are in relaxed
    order). A test that asserts the exact top result searches a fresh graph.
    """
    with connection.cursor() as cursor:
        cursor.execute("REINDEX TABLE documents_chunk")
