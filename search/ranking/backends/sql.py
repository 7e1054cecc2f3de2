"""The ranking SQL shared by every mode, written once.

Each leg is a list of CTEs over ``base`` (the documents the user may see,
narrowed by the filters), so a restricted document can neither appear in a
leg nor shape its statistics. Hybrid search composes the two legs in one
statement. Fragments return ``(sql, params)`` with positional placeholders,
concatenated in text order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from django.core.exceptions import EmptyResultSet

from search.ranking.query import phrase_tsquery

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from documents.models import Document
    from search.ranking.query import ParsedQuery

#: SQL text with positional placeholders, and its parameters in text order.
Fragment = tuple[str, list[Any]]

#: Okapi BM25 parameters (Pyserini's defaults, as in the BEIR baselines).
BM25_K1: Final = 0.9
BM25_B: Final = 0.4
#: Reciprocal rank fusion constant (Cormack et al., 2009).
RRF_K: Final = 60


def base_cte(queryset: QuerySet[Document], query: ParsedQuery | None = None) -> Fragment:
    """``base(id)``: the visible, filtered documents that meet the query's
    constraints (quoted phrases present, excluded words absent).

    The constraints live here, not in one leg, so that every mode honours
    them and BM25 statistics are counted over exactly these documents.
    """
    sql, params = base_query(queryset, query)
    return f"base AS ({sql})", params


def base_query(queryset: QuerySet[Document], query: ParsedQuery | None = None) -> Fragment:
    """The ``SELECT id`` behind :func:`base_cte`."""
    params: list[Any]
    try:
        sql, compiled = queryset.order_by().values("id").query.sql_with_params()
        params = list(compiled)
    except EmptyResultSet:
        # ``.none()`` (no user, no permission) compiles to no SQL at all.
        sql, params = "SELECT NULL::bigint AS id WHERE false", []
    conditions: list[str] = []
    if query is not None:
        for phrase in query.phrases:
            conditions.append(f"v.id IN ({_PHRASE_DOCUMENTS})")
            params.append(phrase_tsquery(phrase))
        for phrase in query.excluded_phrases:
            conditions.append(f"v.id NOT IN ({_PHRASE_DOCUMENTS})")
            params.append(phrase_tsquery(phrase))
        if query.excluded:
            conditions.append(
                "v.id NOT IN (SELECT x.document_id FROM documents_documentterm x"
                " WHERE x.term = ANY(%s::text[]))"
            )
            params.append(list(query.excluded))
    if not conditions:
        return sql, params
    where = " AND ".join(conditions)
    return f"SELECT v.id FROM ({sql}) v WHERE {where}", params


_PHRASE_DOCUMENTS: Final = (
    "SELECT c.document_id FROM documents_chunk c WHERE c.search_vector @@ %s::tsquery"
)


def keyword_ctes(query: ParsedQuery, *, limit: int) -> Fragment:
    """``kw(document_id, score, rank, total)``: Okapi BM25 over the postings.

    score = sum over query terms t of
        idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)),
    idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))  (Lucene's non-negative idf),
    with N, df and avgdl counted over ``base`` only. Robertson & Zaragoza,
    "The Probabilistic Relevance Framework: BM25 and Beyond" (2009).

    One pass over the postings (an index-only scan of ``term_postings``,
    which carries tf and the document length) yields every term's df as a
    window count, so the documents table is read only for N and avgdl.
    """
    params: list[Any] = [list(query.terms)]
    sql = f"""
    kw_stats AS (
        SELECT count(*)::float8 AS n, coalesce(avg(d.term_count), 1)::float8 AS avgdl
        FROM documents_document d
        WHERE d.id IN (SELECT id FROM base) AND d.term_count > 0
    ),
    kw_post AS (
        SELECT p.document_id, p.term, p.tf, p.doc_length,
               count(*) OVER (PARTITION BY p.term)::float8 AS df
        FROM documents_documentterm p
        WHERE p.term = ANY(%s::text[]) AND p.document_id IN (SELECT id FROM base)
    ),
    kw_scored AS (
        SELECT p.document_id,
               sum(ln(1 + (s.n - p.df + 0.5) / (p.df + 0.5))
                   * p.tf * {BM25_K1 + 1}
                   / (p.tf + {BM25_K1} * (1 - {BM25_B} + {BM25_B} * p.doc_length
                                           / greatest(s.avgdl, 1)))) AS score
        FROM kw_post p
        CROSS JOIN kw_stats s
        GROUP BY p.document_id
    ),
    kw AS (
        SELECT k.document_id, k.score,
               row_number() OVER (ORDER BY k.score DESC, k.document_id) AS rank,
               count(*) OVER () AS total
        FROM kw_scored k
        ORDER BY k.score DESC, k.document_id
        LIMIT %s
    )"""
    params.append(limit)
    return sql, params


def keyword_bound_cte(query: ParsedQuery) -> Fragment:
    """``kw_bound(ub)``: the highest BM25 score any document could get for the query.

    Each distinct query term at its full weight, idf(t) * (k1 + 1) (the limit
    of a term's BM25 contribution as tf grows), with df counted over ``base``
    as in :func:`keyword_ctes` (whose ``kw_post`` and ``kw_stats`` it reads);
    a term no visible document contains counts at df = 0. A document's score
    over this bound says how much of the query its words explain: hybrid
    fusion weighs keyword evidence by it.
    """
    sql = f"""
    kw_bound AS (
        SELECT {BM25_K1 + 1} * coalesce(sum(ln(1 + (s.n - coalesce(d.df, 0) + 0.5)
                                               / (coalesce(d.df, 0) + 0.5))), 0) AS ub
        FROM (SELECT DISTINCT unnest(%s::text[]) AS term) q
        LEFT JOIN (SELECT DISTINCT p.term, p.df FROM kw_post p) d ON d.term = q.term
        CROSS JOIN kw_stats s
    )"""
    return sql, [list(query.terms)]


@dataclass(frozen=True, slots=True)
class VectorQuery:
    """A query embedding and how to search the chunks with it."""

    #: A ``pgvector.Vector`` (the analytics renderer puts an argument there).
    vector: Any
    dimensions: int
    model: str
    #: Exact scan instead of the HNSW index (very selective filters).
    exact: bool = False
    #: Distance added to chunks of English documents and of the others
    #: (``semantic.language_shifts``): None when the collection is of one
    #: language, and then the chunks are scanned in one pass.
    shifts: tuple[float, float] | None = None


#: The two language groups the semantic leg scans apart when ``shifts`` is
#: set: English documents, and the rest (Korean and mixed text).
LANGUAGE_GROUPS: Final = ("l.language = 'en'", "l.language <> 'en'")
_GROUP_DOCUMENTS: Final = "SELECT l.id FROM documents_document l WHERE"


def semantic_ctes(
    vector: VectorQuery, *, chunk_limit: int, limit: int, base: Fragment | None = None
) -> Fragment:
    """``sem(document_id, chunk_id, score, rank, matches)``: nearest chunks.

    Chunks come through the HNSW index on ``embedding::vector(d)`` (cosine),
    are grouped to documents in SQL (best chunk wins) and ranked by cosine
    similarity. ``matches`` counts the document's chunks among the neighbours.

    ``base`` (from :func:`base_query`) puts the visible set inline. Pass it
    whenever ``base`` is also used by another leg: PostgreSQL materialises a
    CTE used more than once, and a filter against the materialised set makes
    the HNSW scan read the whole index (measured: 10,008 index rows and
    ~400 ms per query on SciFact, against 42 rows and a few ms inline).
    """
    base_sql, base_params = base if base is not None else ("SELECT id FROM base", [])
    dims = int(vector.dimensions)
    distance = (
        "(c.embedding <=> %s::vector)"
        if vector.exact
        else f"(c.embedding::vector({dims}) <=> %s::vector({dims}))"
    )

    def scan(shift: str = "", group: str = "") -> str:
        return f"""
        SELECT c.id, c.document_id, {distance}{shift} AS dist
        FROM documents_chunk c
        WHERE vector_dims(c.embedding) = {dims} AND c.embedding_model = %s
          AND c.document_id IN ({base_sql}){group}
        ORDER BY {distance}
        LIMIT %s"""

    if vector.shifts is None:
        nearest = scan()
        nearest_params = [vector.vector, vector.model, *base_params, vector.vector, chunk_limit]
    else:
        # One scan per language group, so that the other language's chunks
        # are candidates at all; each group's distances shifted by its own.
        nearest = "\n        UNION ALL".join(
            f"({scan(' + %s', f' AND c.document_id IN ({_GROUP_DOCUMENTS} {group})')})"
            for group in LANGUAGE_GROUPS
        )
        nearest_params = [
            param
            for shift in vector.shifts
            for param in (
                vector.vector,
                shift,
                vector.model,
                *base_params,
                vector.vector,
                chunk_limit,
            )
        ]
    sql = f"""
    sem_nn AS MATERIALIZED ({nearest}
    ),
    sem_best AS (
        SELECT DISTINCT ON (document_id) document_id, id AS chunk_id, dist,
               count(*) OVER (PARTITION BY document_id) AS matches
        FROM sem_nn
        ORDER BY document_id, dist, id
    ),
    sem AS (
        SELECT document_id, chunk_id, 1 - dist AS score, matches,
               row_number() OVER (ORDER BY dist, document_id) AS rank
        FROM sem_best
        ORDER BY dist, document_id
        LIMIT %s
    )"""
    return sql, [*nearest_params, limit]


def semantic_fill_cte(vector: VectorQuery) -> Fragment:
    """``sem_fill(document_id, chunk_id, score)``: keyword candidates' semantic scores.

    A document the keyword leg found but the nearest-chunk scan did not (it
    ranked below the leg's candidates) still has a cosine: its best chunk's,
    computed exactly over its few chunks, so that fusion weighs every
    candidate on both legs rather than scoring a missing leg as zero.
    """
    dims = int(vector.dimensions)
    shift, join, shift_params = "", "", []
    if vector.shifts is not None:
        shift = f" - CASE WHEN {LANGUAGE_GROUPS[0]} THEN %s ELSE %s END"
        join = " JOIN documents_document l ON l.id = c.document_id"
        shift_params = list(vector.shifts)
    sql = f"""
    sem_fill AS (
        SELECT DISTINCT ON (c.document_id) c.document_id, c.id AS chunk_id,
               1 - (c.embedding <=> %s::vector){shift} AS score
        FROM documents_chunk c{join}
        WHERE c.document_id IN (SELECT document_id FROM kw)
          AND c.document_id NOT IN (SELECT document_id FROM sem)
          AND vector_dims(c.embedding) = {dims} AND c.embedding_model = %s
        ORDER BY c.document_id, c.embedding <=> %s::vector, c.id
    ),
    sem_all AS (
        SELECT document_id, chunk_id, score, rank, matches FROM sem
        UNION ALL
        SELECT document_id, chunk_id, score, NULL, 0 FROM sem_fill
    )"""
    return sql, [vector.vector, *shift_params, vector.model, vector.vector]


def visible_chunks_query(vector: VectorQuery, *, base: Fragment) -> Fragment:
    """``SELECT count(*)`` of the chunks of ``vector``'s model in ``base``
    (from :func:`base_query`): all an exact scan could find."""
    base_sql, base_params = base
    sql = (
        "SELECT count(*) FROM documents_chunk c"
        f" WHERE vector_dims(c.embedding) = {int(vector.dimensions)}"
        f" AND c.embedding_model = %s AND c.document_id IN ({base_sql})"
    )
    return sql, [vector.model, *base_params]


def hybrid_select(
    *,
    keyword_weight: float,
    semantic_weight: float,
    fusion: str,
    limit: int,
    candidate_counts: bool = False,
) -> Fragment:
    """Fuse ``kw`` and ``sem_all`` into one ranking.

    ``convex``: a weighted sum of per-query normalised scores, as in Bruch et
    al., "An Analysis of Fusion Functions for Hybrid Retrieval" (2023): the
    cosine min-max scaled over the candidates, and BM25 divided by the
    query's bound (``kw_bound``) rather than by the best score found, so that
    a query whose words no document explains well (a paraphrase) leans on
    the semantic leg, and one whose words a document matches closely leans
    on the keyword leg. ``rrf``: weighted reciprocal rank fusion,
    w / (60 + rank).

    ``candidate_counts`` adds the number of nearest chunks and of semantic
    documents found, which tell the caller whether a selective filter starved
    the index scan.
    """
    if fusion == "rrf":
        fused = (
            f"%s * coalesce(1.0 / ({RRF_K} + k.rank), 0)"
            f" + %s * coalesce(1.0 / ({RRF_K} + s.rank), 0)"
        )
    else:
        fused = (
            "%s * least(coalesce(k.score / nullif(kb.ub, 0), 0), 1)"
            " + %s * coalesce((s.score - sm.lo) / nullif(sm.hi - sm.lo, 0),"
            " CASE WHEN s.score IS NULL THEN 0 ELSE 1 END)"
        )
    counts = (
        ", (SELECT count(*) FROM sem_nn), (SELECT count(*) FROM sem)" if candidate_counts else ""
    )
    sql = f"""
    SELECT coalesce(k.document_id, s.document_id) AS document_id,
           {fused} AS fused,
           k.rank, k.score, s.rank, s.score, s.chunk_id, coalesce(s.matches, 0),
           count(*) OVER () AS total{counts}
    FROM kw k
    FULL OUTER JOIN sem_all s ON s.document_id = k.document_id
    CROSS JOIN kw_bound kb
    CROSS JOIN (SELECT min(score) AS lo, max(score) AS hi FROM sem_all) sm
    ORDER BY fused DESC, document_id
    LIMIT %s"""
    return sql, [keyword_weight, semantic_weight, limit]


def compose(*parts: Fragment, select: Fragment) -> Fragment:
    """``WITH part, part, ... select`` with parameters in text order."""
    ctes = ",\n".join(sql for sql, _ in parts)
    params: list[Any] = [p for _, ps in parts for p in ps]
    return f"WITH {ctes}\n{select[0]}", params + select[1]
