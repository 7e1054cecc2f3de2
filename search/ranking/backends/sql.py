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

from django.conf import settings
from django.core.exceptions import EmptyResultSet, ImproperlyConfigured

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

    With ``SEARCH_KEYWORD_COMMON_POSTINGS`` set (the default) the postings
    of common terms are pruned: see :func:`_pruned_keyword_ctes`. At 0 the
    leg reads every posting of every query term in one pass (an index-only
    scan of ``term_postings``, which carries tf and the document length),
    with each term's df a window count over that same scan.
    """
    cap = int(settings.SEARCH_KEYWORD_COMMON_POSTINGS)
    if cap > 0:
        share = float(settings.SEARCH_KEYWORD_COMMON_SHARE)
        return _pruned_keyword_ctes(query, limit=limit, cap=cap, share=share)
    params: list[Any] = [list(query.terms)]
    sql = f"""
    {_KW_STATS},
    kw_post AS (
        SELECT p.document_id, p.term, p.tf, p.doc_length,
               count(*) OVER (PARTITION BY p.term)::float8 AS df
        FROM documents_documentterm p
        WHERE p.term = ANY(%s::text[]) AND p.document_id IN (SELECT id FROM base)
    ),
    kw_df AS (SELECT DISTINCT p.term, p.df FROM kw_post p),
    kw_scored AS (
        SELECT p.document_id,
               sum(ln(1 + (s.n - p.df + 0.5) / (p.df + 0.5)) * {_bm25_tf("p")}) AS score
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


_KW_STATS: Final = """kw_stats AS (
        SELECT count(*)::float8 AS n, coalesce(avg(d.term_count), 1)::float8 AS avgdl
        FROM documents_document d
        WHERE d.id IN (SELECT id FROM base) AND d.term_count > 0
    )"""

#: ``base`` membership in the pruned leg: free when ``base`` is every document
#: (a user who may see the whole collection, no filter): the hashed subplan
#: of ``base`` is then never built, and df is a bare count of the postings.
_VISIBLE: Final = "((SELECT everything FROM kw_scope) OR {column} IN (SELECT id FROM base))"

#: Documents rescored with the common terms, beyond the ``limit`` wanted:
#: ``limit * 2 + RESCORE_MARGIN`` (in SQL, since ``limit`` may be an
#: analytics function argument).
RESCORE_MARGIN: Final = 100


def _bm25_tf(alias: str) -> str:
    """A posting's BM25 term-frequency factor (the part that multiplies idf)."""
    return (
        f"{alias}.tf * {BM25_K1 + 1} / ({alias}.tf + {BM25_K1} * (1 - {BM25_B}"
        f" + {BM25_B} * {alias}.doc_length / greatest(s.avgdl, 1)))"
    )


def _pruned_keyword_ctes(query: ParsedQuery, *, limit: int, cap: int, share: float) -> Fragment:
    """``kw`` as in :func:`keyword_ctes`, without reading common terms' postings.

    A term is *common* when more visible documents contain it than ``cap``
    or the ``share`` of them (N), whichever is more: the share keeps terms
    that still tell documents apart (idf above ln(1 + 1 / share)) out of
    pruning in a large collection.
    Only the other (rarer) terms generate candidates: their postings are
    read and scored, the best ``limit * 2 + RESCORE_MARGIN`` documents by
    that partial score are kept, and only for those is each common term's
    posting looked up (one index probe per document and term) and its BM25
    contribution added. If every term is common, all of them generate
    candidates (the exact, unpruned read). So the postings read per query
    are bounded by ``cap`` per rare term until the share takes over.

    Trade-offs. Ranking is exact when no term is common (the rescored set
    holds the true top documents); otherwise a document is missed only if
    it contains no rare query term, or if its common terms lift it from
    beyond the rescored depth into the top ``limit``. Common terms have the
    lowest idf (below ln(1 + N / cap)), so both are rare in practice: see
    the README's measurements. ``total`` becomes a lower bound (documents
    with a rare term, or the largest common df if more).

    What still grows with the collection: N and avgdl (one index-only pass
    over the documents) and each term's df, kept exact over ``base``. When
    ``base`` is every document (``kw_scope``: its count equals the table's,
    so a user who may see everything, unfiltered) df is a bare index-only
    count of the term's postings and no visibility check is built at all;
    otherwise the postings are counted against a hash of ``base`` (and N
    and avgdl over it), linear in the visible documents as before.
    """
    terms = list(query.terms)
    sql = f"""
    kw_all AS MATERIALIZED (
        SELECT count(*) AS documents,
               count(*) FILTER (WHERE a.term_count > 0)::float8 AS n,
               coalesce(avg(a.term_count) FILTER (WHERE a.term_count > 0), 1)::float8 AS avgdl
        FROM documents_document a
    ),
    kw_scope AS MATERIALIZED (
        SELECT (SELECT count(*) FROM base) = a.documents AS everything FROM kw_all a
    ),
    kw_stats AS MATERIALIZED (
        SELECT a.n, a.avgdl FROM kw_all a WHERE (SELECT everything FROM kw_scope)
        UNION ALL
        SELECT count(*)::float8, coalesce(avg(d.term_count), 1)::float8
        FROM documents_document d
        WHERE NOT (SELECT everything FROM kw_scope)
          AND d.term_count > 0 AND d.id IN (SELECT id FROM base)
        HAVING NOT (SELECT everything FROM kw_scope)
    ),
    -- Read only when base is not every document (kw_df's CASE).
    kw_df_visible AS MATERIALIZED (
        SELECT p.term, count(*) AS df
        FROM documents_documentterm p
        WHERE p.term = ANY(%s::text[]) AND p.document_id IN (SELECT id FROM base)
        GROUP BY p.term
    ),
    kw_df AS MATERIALIZED (
        SELECT q.term,
               (CASE WHEN (SELECT everything FROM kw_scope)
                     THEN (SELECT count(*) FROM documents_documentterm p WHERE p.term = q.term)
                     ELSE coalesce((SELECT v.df FROM kw_df_visible v WHERE v.term = q.term), 0)
                END)::float8 AS df
        FROM (SELECT DISTINCT unnest(%s::text[]) AS term) q
    ),
    kw_terms AS MATERIALIZED (
        SELECT d.term, d.df, ln(1 + (s.n - d.df + 0.5) / (d.df + 0.5)) AS idf,
               (d.df <= greatest(%s, %s * s.n) OR NOT EXISTS (
                   SELECT 1 FROM kw_df r
                   WHERE r.df > 0 AND r.df <= greatest(%s, %s * s.n))) AS generates
        FROM kw_df d
        CROSS JOIN kw_stats s
        WHERE d.df > 0
    ),
    -- Read by term, then filtered by ``base``: planned in one, the base
    -- documents drive an index probe each (measured 27 ms for 720 docs).
    kw_generated AS MATERIALIZED (
        SELECT p.document_id, p.tf, p.doc_length, t.idf
        FROM documents_documentterm p
        JOIN kw_terms t ON t.term = p.term
        WHERE p.term = ANY(ARRAY(SELECT g.term FROM kw_terms g WHERE g.generates))
    ),
    kw_partial AS (
        SELECT p.document_id, sum(p.idf * {_bm25_tf("p")}) AS score
        FROM kw_generated p
        CROSS JOIN kw_stats s
        WHERE {_VISIBLE.format(column="p.document_id")}
        GROUP BY p.document_id
    ),
    kw_top AS MATERIALIZED (
        SELECT document_id, score
        FROM kw_partial
        ORDER BY score DESC, document_id
        LIMIT %s * 2 + {RESCORE_MARGIN}
    ),
    kw_common AS (
        SELECT t.document_id, sum(c.idf * {_bm25_tf("p")}) AS score
        FROM kw_top t
        CROSS JOIN kw_terms c
        -- LIMIT keeps this a probe per (document, term): joined plainly, the
        -- planner reads the common term's whole posting list instead.
        CROSS JOIN LATERAL (
            SELECT p.tf, p.doc_length
            FROM documents_documentterm p
            WHERE p.term = c.term AND p.document_id = t.document_id
            LIMIT 1
        ) p
        CROSS JOIN kw_stats s
        WHERE NOT c.generates
        GROUP BY t.document_id
    ),
    kw AS (
        SELECT t.document_id, t.score + coalesce(c.score, 0) AS score,
               row_number() OVER (ORDER BY t.score + coalesce(c.score, 0) DESC,
                                  t.document_id) AS rank,
               (SELECT greatest(
                    (SELECT count(*) FROM kw_partial),
                    (SELECT coalesce(max(df), 0) FROM kw_terms WHERE NOT generates)
                )::bigint) AS total
        FROM kw_top t
        LEFT JOIN kw_common c ON c.document_id = t.document_id
        ORDER BY 2 DESC, t.document_id
        LIMIT %s
    )"""
    return sql, [terms, terms, cap, share, cap, share, limit, limit]


def keyword_bound_cte(query: ParsedQuery) -> Fragment:
    """``kw_bound(ub)``: the highest BM25 score any document could get for the query.

    Each distinct query term at its full weight, idf(t) * (k1 + 1) (the limit
    of a term's BM25 contribution as tf grows), with df counted over ``base``
    as in :func:`keyword_ctes` (whose ``kw_df`` and ``kw_stats`` it reads);
    a term no visible document contains counts at df = 0. A document's score
    over this bound says how much of the query its words explain: hybrid
    fusion weighs keyword evidence by it.
    """
    sql = f"""
    kw_bound AS (
        SELECT {BM25_K1 + 1} * coalesce(sum(ln(1 + (s.n - coalesce(d.df, 0) + 0.5)
                                               / (coalesce(d.df, 0) + 0.5))), 0) AS ub
        FROM (SELECT DISTINCT unnest(%s::text[]) AS term) q
        LEFT JOIN kw_df d ON d.term = q.term
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
    #: The query embedded by the companion model (``documents.embeddings.
    #: get_companion``), its name and weight; None when the query is not in
    #: a language the companion reads, or there is none.
    companion: Any = None
    companion_model: str = ""
    companion_weight: float = 0.0


def _companion_cosine(vector: VectorQuery) -> Fragment:
    """A chunk's cosine to the companion query: NULL for a chunk without a
    vector of that model (Korean text, or not embedded by it yet), so a
    query vector is never compared with another model's."""
    return (
        "CASE WHEN c.companion_model = %s THEN 1 - (c.companion_embedding <=> %s::vector) END",
        [vector.companion_model, vector.companion],
    )


#: The casts an HNSW index exists for (migrations 0002 and 0007).
VECTOR_TYPES: Final = ("vector", "halfvec")


def index_cast() -> str:
    """The type the index scan casts chunk and query vectors to.

    ``SEARCH_VECTOR_TYPE``: ``vector`` (float4), or ``halfvec`` (float2:
    half the index size and memory, at a small cost in precision). Exact
    scans always compare full-precision vectors.
    """
    cast = str(settings.SEARCH_VECTOR_TYPE)
    if cast not in VECTOR_TYPES:
        raise ImproperlyConfigured(
            f"SEARCH_VECTOR_TYPE must be one of {', '.join(VECTOR_TYPES)}, not {cast!r}"
        )
    return cast


def _companion_or_mean(cosine: str) -> str:
    """A candidate's companion ``cosine``, or the mean over the nearest chunks
    that have one (0 when none has: a constant, so no ranking changes)."""
    return f"coalesce({cosine}, (SELECT avg(n.comp) FROM sem_nn n), 0)"


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
        else f"(c.embedding::{index_cast()}({dims}) <=> %s::{index_cast()}({dims}))"
    )

    companion_sql, companion_params = "", list[Any]()
    if vector.companion is not None:
        companion_sql, companion_params = _companion_cosine(vector)
        companion_sql = f", {companion_sql} AS comp"

    def scan(shift: str = "", group: str = "") -> str:
        return f"""
        SELECT c.id, c.document_id, {distance}{shift} AS dist{companion_sql}
        FROM documents_chunk c
        WHERE vector_dims(c.embedding) = {dims} AND c.embedding_model = %s
          AND c.document_id IN ({base_sql}){group}
        ORDER BY {distance}
        LIMIT %s"""

    if vector.shifts is None:
        nearest = scan()
        nearest_params = [
            vector.vector,
            *companion_params,
            vector.model,
            *base_params,
            vector.vector,
            chunk_limit,
        ]
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
                *companion_params,
                vector.model,
                *base_params,
                vector.vector,
                chunk_limit,
            )
        ]
    candidates = "sem_nn"
    blend = ""
    if vector.companion is not None:
        # The candidates' distances blend in the companion's cosine; a chunk
        # it cannot read (Korean) gets the candidates' mean, which neither
        # lifts nor sinks it, so cross-language results keep their place.
        weight = float(vector.companion_weight)
        candidates = "sem_mix"
        blend = f"""
    sem_mix AS (
        SELECT id, document_id,
               {1 - weight} * dist + {weight} * (1 - {_companion_or_mean("comp")}) AS dist
        FROM sem_nn
    ),"""
    sql = f"""
    sem_nn AS MATERIALIZED ({nearest}
    ),{blend}
    sem_best AS (
        SELECT DISTINCT ON (document_id) document_id, id AS chunk_id, dist,
               count(*) OVER (PARTITION BY document_id) AS matches
        FROM {candidates}
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
    score = f"1 - (c.embedding <=> %s::vector){shift}"
    score_params = [vector.vector, *shift_params]
    if vector.companion is not None:
        # Blended as in semantic_ctes' sem_mix.
        weight = float(vector.companion_weight)
        cosine, cosine_params = _companion_cosine(vector)
        score = f"{1 - weight} * ({score}) + {weight} * {_companion_or_mean(cosine)}"
        score_params += cosine_params
    sql = f"""
    sem_fill AS (
        SELECT DISTINCT ON (c.document_id) c.document_id, c.id AS chunk_id, {score} AS score
        FROM documents_chunk c{join}
        WHERE c.document_id IN (SELECT document_id FROM kw)
          AND c.document_id NOT IN (SELECT document_id FROM sem)
          AND vector_dims(c.embedding) = {dims} AND c.embedding_model = %s
        ORDER BY c.document_id, score DESC, c.id
    ),
    sem_all AS (
        SELECT document_id, chunk_id, score, rank, matches FROM sem
        UNION ALL
        SELECT document_id, chunk_id, score, NULL, 0 FROM sem_fill
    )"""
    return sql, [*score_params, vector.model]


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
