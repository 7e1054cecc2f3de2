"""Reads for the search UI and API: ranked, visible, highlighted results."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models.functions import Substr

from config.routers import read_connection
from documents.models import Document
from search.ranking.backends import SearchFilters, SearchHit, SearchMode, get_search_backend
from search.ranking.backends.sql import base_cte
from search.ranking.highlight import highlight
from search.ranking.query import ParsedQuery, parse_query
from search.ranking.rerank import RerankerUnavailable, get_reranker, rerank_hits

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.auth.models import User as AuthUser
    from django.db.models import QuerySet
    from django.utils.safestring import SafeString

    User = AuthUser | AnonymousUser


@dataclass(slots=True)
class ResultItem:
    document: Document
    hit: SearchHit
    snippet: SafeString
    #: Further passages of the document that match, beyond the one shown.
    more_matches: int = 0


@dataclass(slots=True)
class Suggestion:
    document_id: int
    title: str
    similarity: float


@dataclass(slots=True)
class SearchPage:
    query: str
    mode: SearchMode
    parsed: ParsedQuery
    #: Whether the cross-encoder re-ordered the top candidates.
    reranked: bool = False
    items: list[ResultItem] = field(default_factory=list)
    total: int = 0
    page: int = 1
    page_size: int = 10
    has_next: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    suggestions: list[Suggestion] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def has_previous(self) -> bool:
        return self.page > 1


def visible_documents(user: User | None, filters: SearchFilters) -> QuerySet[Document]:
    """The documents a search by ``user`` may draw from."""
    return filters.apply(Document.objects.visible_to(user))


def search_hits(
    *,
    query: str | ParsedQuery,
    mode: SearchMode | str,
    user: User | None,
    filters: SearchFilters | None = None,
    limit: int = 10,
    rerank: bool = False,
) -> list[SearchHit]:
    """Ranked hits only (no snippets): what evaluation and the API's k use.

    ``rerank`` re-orders the top candidates with the configured cross-encoder
    (raises RerankerUnavailable without one).
    """
    parsed = query if isinstance(query, ParsedQuery) else parse_query(query)
    if parsed.is_empty:
        return []
    queryset = visible_documents(user, filters or SearchFilters())
    if not rerank:
        return get_search_backend(mode).search(parsed, queryset=queryset, limit=limit).hits
    reranker = get_reranker()
    wanted = max(limit, settings.RERANK_CANDIDATES)
    hits = get_search_backend(mode).search(parsed, queryset=queryset, limit=wanted).hits
    return rerank_hits(parsed.semantic_text, hits, reranker=reranker)[0][:limit]


def search_documents(
    *,
    query: str,
    mode: SearchMode | str,
    user: User | None,
    filters: SearchFilters | None = None,
    page: int = 1,
    page_size: int | None = None,
    sort: str = "relevance",
    rerank: bool | None = None,
) -> SearchPage:
    """Search, then load the page's documents with highlighted passages.

    ``rerank`` (default ``RERANK_DEFAULT``) re-orders the top candidates with
    the cross-encoder; without one the page keeps its order and says why.
    """
    started = time.perf_counter()
    mode = SearchMode(mode)
    filters = filters or SearchFilters()
    page_size = page_size or settings.SEARCH_RESULTS_PER_PAGE
    page = max(1, page)
    parsed = parse_query(query)
    result = SearchPage(query=parsed.text, mode=mode, parsed=parsed, page=page, page_size=page_size)
    if parsed.truncated:
        result.notes.append("Your query was cut to its first 1,000 characters.")
    if parsed.is_empty:
        return result
    queryset = visible_documents(user, filters)
    wanted = page * page_size + 1
    limit = max(wanted, settings.SEARCH_CANDIDATES) if sort == "date" else wanted
    if mode is not SearchMode.KEYWORD:
        limit = min(limit, max(settings.SEARCH_CANDIDATES, wanted))
    reranker = None
    if (settings.RERANK_DEFAULT if rerank is None else rerank) and sort == "relevance":
        try:
            reranker = get_reranker()
        except RerankerUnavailable as exc:
            result.notes.append(str(exc))
        else:
            limit = max(limit, settings.RERANK_CANDIDATES)
    ranked = get_search_backend(mode).search(parsed, queryset=queryset, limit=limit)
    result.timings.update(ranked.timings)
    result.notes.extend(ranked.notes)
    hits = ranked.hits
    if reranker is not None and hits:
        hits, result.timings["rerank_ms"] = rerank_hits(
            parsed.semantic_text, hits, reranker=reranker
        )
        result.reranked = True
    result.total = max(ranked.total, len(hits))
    if sort == "date":
        dates = dict(
            Document.objects.filter(pk__in=[h.document_id for h in hits]).values_list(
                "pk", "updated_at"
            )
        )
        hits = sorted(hits, key=lambda h: dates.get(h.document_id) or 0, reverse=True)
    offset = (page - 1) * page_size
    result.has_next = len(hits) > offset + page_size
    result.items = _load_items(hits[offset : offset + page_size], parsed)
    if not hits and mode is not SearchMode.SEMANTIC:
        # Excluded words and operators are not what the user is looking for.
        result.suggestions = title_suggestions(parsed.semantic_text, queryset=queryset)
    result.timings["total_ms"] = (time.perf_counter() - started) * 1000
    return result


def _load_items(hits: list[SearchHit], parsed: ParsedQuery) -> list[ResultItem]:
    if not hits:
        return []
    ids = [hit.document_id for hit in hits]
    documents = {
        d.pk: d
        for d in Document.objects.filter(pk__in=ids)
        .defer("text", "embedding")
        .annotate(head=Substr("text", 1, 1500))
        .select_related("owner")
    }
    keyword_passages = _keyword_passages(ids, parsed.terms)
    semantic_passages = _chunk_texts([h.chunk_id for h in hits if h.chunk_id])
    items: list[ResultItem] = []
    for hit in hits:
        document = documents.get(hit.document_id)
        if document is None:
            continue  # Deleted between ranking and loading.
        if hit.document_id in keyword_passages:
            text, count = keyword_passages[hit.document_id]
            more = max(count, hit.chunk_matches) - 1
        elif hit.chunk_id in semantic_passages:
            text, more = semantic_passages[hit.chunk_id], hit.chunk_matches - 1
        else:
            text, more = document.head, 0
        items.append(
            ResultItem(
                document=document,
                hit=hit,
                snippet=highlight(text, parsed.terms),
                more_matches=max(more, 0),
            )
        )
    return items


def _keyword_passages(
    document_ids: list[int], terms: tuple[str, ...]
) -> dict[int, tuple[str, int]]:
    """Per document, its best keyword-matching chunk and how many chunks match."""
    if not terms:
        return {}
    tsquery = " | ".join(f"'{term}'" for term in terms)
    with read_connection().cursor() as cursor:
        cursor.execute(
            """
            SELECT DISTINCT ON (c.document_id) c.document_id, c.text,
                   count(*) OVER (PARTITION BY c.document_id)
            FROM documents_chunk c
            JOIN documents_document d ON d.id = c.document_id
            WHERE c.document_id = ANY(%s) AND c.search_vector @@ %s::tsquery
              AND c.embedding_model = d.embedding_model
            ORDER BY c.document_id, ts_rank(c.search_vector, %s::tsquery) DESC, c.position
            """,
            [document_ids, tsquery, tsquery],
        )
        return {doc_id: (text, int(count)) for doc_id, text, count in cursor.fetchall()}


def _chunk_texts(chunk_ids: list[int]) -> dict[int, str]:
    if not chunk_ids:
        return {}
    with read_connection().cursor() as cursor:
        cursor.execute("SELECT id, text FROM documents_chunk WHERE id = ANY(%s)", [chunk_ids])
        return dict(cursor.fetchall())


def title_suggestions(
    text: str, *, queryset: QuerySet[Document], limit: int = 5
) -> list[Suggestion]:
    """Visible titles spelled like the query (pg_trgm), for an empty result."""
    if not text.strip():
        return []
    base_sql, params = base_cte(queryset)
    with read_connection().cursor() as cursor:
        cursor.execute(
            f"""
            WITH {base_sql}
            SELECT d.id, d.title, word_similarity(%s, d.title) AS sim
            FROM documents_document d
            WHERE d.id IN (SELECT id FROM base) AND %s <%% d.title
            ORDER BY sim DESC, d.id
            LIMIT %s
            """,
            [*params, text, text, limit],
        )
        return [
            Suggestion(document_id=i, title=t, similarity=float(s)) for i, t, s in cursor.fetchall()
        ]
