"""Related documents: nearest neighbours of a document, with the reason why.

One statement does the work (Zulip-style: rank where the data is). It finds
candidates through the HNSW indexes (document embeddings, and in the chunk
methods the chunk embeddings nearest each of the source's chunks), scores
each candidate by document-level cosine and by its best chunk pair, and
returns that best pair as the "why": a passage from each document.

Candidates are drawn from ``base``, the documents the user may see (see
``search.ranking.backends.sql.base_cte``), inside the SQL, so a restricted document
can never appear, crowd out a visible one or shift a count.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from django.db.models import Func, IntegerField
from django.utils.text import Truncator
from pgvector import Vector

from config.routers import read_cursor
from documents.embeddings import duplicate_threshold_for, related_centering_for
from documents.models import Document
from search.ranking import centroids
from search.ranking.backends.semantic import set_hnsw_options
from search.ranking.backends.sql import Fragment, base_cte

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User
    from django.db.models import QuerySet

__all__ = [
    "DEFAULT_METHOD",
    "MAX_DUPLICATES",
    "RelatedDocument",
    "RelatedMethod",
    "related_documents",
]


class RelatedMethod(StrEnum):
    #: Cosine of the documents' mean embeddings.
    DOCUMENT = "document"
    #: Cosine of the best-matching pair of chunks.
    CHUNK = "chunk"
    #: The mean of the two.
    COMBINED = "combined"


#: Chosen by ``manage.py eval_related --dataset ../shared/eval/scifact``
#: (all-MiniLM-L6-v2, 58 source documents): nDCG@10 / Recall@10 were
#: document 0.635 / 0.805, chunk 0.636 / 0.797, combined 0.632 / 0.787.
#: A tie within noise, so the cheapest method wins; chunk similarity still
#: picks the passages shown. Measure again on longer documents.
DEFAULT_METHOD: Final = RelatedMethod.DOCUMENT
#: Possible copies listed at most; the rest of k is real recommendations.
MAX_DUPLICATES: Final = 2
#: Related documents on a document page, and the API's default k.
DEFAULT_K: Final = 5
#: Largest k served (the API passes the caller's k through).
MAX_K: Final = 50
#: Candidates scored per wanted result, before chunk refinement.
CANDIDATES_PER_RESULT: Final = 4
MIN_CANDIDATES: Final = 20
#: Source chunks compared (the first ones); bounds the cost of long documents.
SOURCE_CHUNKS: Final = 64
#: Characters of each passage returned.
PASSAGE_CHARS: Final = 400


@dataclass(frozen=True, slots=True)
class RelatedDocument:
    document_id: int
    title: str
    #: Cosine similarity (for ``combined``, the mean of the two cosines).
    score: float
    possible_duplicate: bool
    #: The best-matching passages: one from the source, one from this document.
    source_passage: str
    related_passage: str
    method: str


@dataclass(frozen=True, slots=True)
class _Source:
    document_id: int
    #: A ``pgvector.Vector`` (the analytics renderer puts an argument there).
    vector: Any
    dimensions: int
    model: str
    #: The model's near-copy cosine (the renderer puts an argument there).
    threshold: Any
    #: The collection's mean document vector when the model ranks by centred
    #: cosine (``related_centering``); None ranks by plain cosine.
    centre: np.ndarray | None = None

    def centring(self) -> tuple[Vector, float, float, float] | None:
        """The mean, the source's dot with it, its square and the centred source's norm."""
        if self.centre is None:
            return None
        source = np.asarray(self.vector.to_numpy(), dtype=np.float32)
        s_mu, mu_mu = float(source @ self.centre), float(self.centre @ self.centre)
        norm = max(1.0 - 2.0 * s_mu + mu_mu, 1e-9) ** 0.5
        return Vector(self.centre), s_mu, mu_mu, norm


def related_documents(
    *,
    user: User | AnonymousUser | None,
    document: Document,
    k: int = 5,
    method: RelatedMethod | str = DEFAULT_METHOD,
) -> list[RelatedDocument]:
    """Up to ``k`` documents ``user`` may see that are most like ``document``.

    Empty when the document has no embedding yet (or ``user`` may not see
    it). Near-copies (document cosine at or above the model's
    ``duplicate_threshold``) are flagged and at most ``MAX_DUPLICATES`` of
    them are listed.
    """
    method = RelatedMethod(method)
    k = min(k, MAX_K)
    if k < 1:
        return []
    visible = Document.objects.visible_to(user)
    if (source := _source(visible, document.pk)) is None:
        return []
    candidates = max(MIN_CANDIDATES, k * CANDIDATES_PER_RESULT) + MAX_DUPLICATES
    rows, scanned = _rank(source, visible, method=method, k=k, candidates=candidates, exact=False)
    if len(rows) < k and scanned < candidates:
        # The index scan gives up after hnsw.max_scan_tuples; when the user
        # sees few documents that can be before enough were found. An exact
        # scan over the documents left never misses.
        rows, _ = _rank(source, visible, method=method, k=k, candidates=candidates, exact=True)
    return [
        RelatedDocument(
            document_id=int(doc_id),
            title=title,
            score=float(score),
            possible_duplicate=bool(duplicate),
            source_passage=_passage(source_text),
            related_passage=_passage(related_text),
            method=method.value,
        )
        for doc_id, title, score, duplicate, source_text, related_text, _ in rows
    ]


def _source(visible: QuerySet[Document], document_id: int) -> _Source | None:
    row = (
        visible.filter(pk=document_id, embedding__isnull=False)
        .annotate(dims=Func("embedding", function="vector_dims", output_field=IntegerField()))
        .values_list("embedding", "dims", "embedding_model")
        .first()
    )
    if row is None:
        return None
    dimensions, model = int(row[1]), row[2]
    return _Source(
        document_id=document_id,
        vector=Vector(np.asarray(row[0], dtype=np.float32)),
        dimensions=dimensions,
        model=model,
        threshold=duplicate_threshold_for(model),
        centre=centroids.collection_mean(model, dimensions)
        if related_centering_for(model)
        else None,
    )


def _passage(text: str | None) -> str:
    return Truncator(" ".join((text or "").split())).chars(PASSAGE_CHARS)


_SCORES: Final = {
    RelatedMethod.DOCUMENT: "doc_sim",
    RelatedMethod.CHUNK: "coalesce(chunk_sim, doc_sim)",
    RelatedMethod.COMBINED: "(doc_sim + coalesce(chunk_sim, doc_sim)) / 2",
}


def _rank(
    source: _Source,
    visible: QuerySet[Document],
    *,
    method: RelatedMethod,
    k: int,
    candidates: int,
    exact: bool,
) -> tuple[list[tuple[Any, ...]], int]:
    """Run the related-documents statement; rows and the document-leg count."""
    sql, params = _statement(
        source, visible, method=method, k=k, candidates=candidates, exact=exact
    )
    with read_cursor(atomic=True) as cursor:
        set_hnsw_options(cursor)
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return rows, (int(rows[0][6]) if rows else 0)


def _statement(
    source: _Source,
    visible: QuerySet[Document],
    *,
    method: RelatedMethod,
    k: int,
    candidates: int,
    exact: bool,
) -> Fragment:
    """The SQL and its parameters, in text order.

    ``doc_nn``: nearest documents by the document HNSW index. ``chunk_nn``
    (chunk methods): for each source chunk its nearest chunks by the chunk
    HNSW index, grouped to documents. ``pairs``: every source chunk against
    every chunk of each candidate, best pair per candidate (``DISTINCT ON``).
    ``kept``: possible copies numbered apart from the rest, so at most
    ``MAX_DUPLICATES`` of them are kept.
    """
    d = int(source.dimensions)
    cast = "" if exact else f"::vector({d})"
    base_sql, params = base_cte(visible)
    chunk_leg = method is not RelatedMethod.DOCUMENT and not exact
    chunk_nn = "SELECT NULL::bigint AS document_id WHERE false"
    if chunk_leg:
        # Its own copy of the visible set: a CTE used twice is materialised,
        # and the planner then hash-joins it to the HNSW scan, which reads
        # the whole index instead of stopping after LIMIT rows.
        leg_sql, leg_params = base_cte(visible)
        base_sql += ",\n" + leg_sql.replace("base AS", "chunk_base AS", 1)
        params += leg_params
        chunk_nn = f"""
        SELECT n.document_id FROM src s CROSS JOIN LATERAL (
            SELECT c.document_id, c.embedding::vector({d}) <=> s.v AS dist
            FROM documents_chunk c
            WHERE vector_dims(c.embedding) = {d} AND c.embedding_model = %s
              AND c.document_id <> %s AND c.document_id IN (SELECT id FROM chunk_base)
            ORDER BY c.embedding::vector({d}) <=> s.v
            LIMIT %s
        ) n
        GROUP BY n.document_id ORDER BY min(n.dist), n.document_id LIMIT %s"""
    params += [source.document_id, source.model, SOURCE_CHUNKS]
    params += [source.model, source.document_id, source.vector, candidates]
    if chunk_leg:
        params += [source.model, source.document_id, candidates, candidates]
    params += [source.model, source.vector]
    dot_centre, doc_sim = "0", "s.raw_sim"
    if (centring := source.centring()) is not None:
        # cos(s - m, d - m) for unit s, d: (s.d - s.m - d.m + m.m) / (|s - m| |d - m|).
        centre, s_mu, mu_mu, norm = centring
        dot_centre = f"-(d.embedding::vector({d}) <#> %s::vector({d}))"
        doc_sim = (
            "(s.raw_sim - %s - s.d_mu + %s) / (%s * sqrt(greatest(1 - 2 * s.d_mu + %s, 1e-9)))"
        )
        params += [centre, s_mu, mu_mu, norm, mu_mu]
    params += [source.threshold, source.threshold, k, MAX_DUPLICATES, k]
    sql = f"""
    WITH {base_sql},
    src AS MATERIALIZED (
        SELECT c.id, c.text, c.embedding::vector({d}) AS v
        FROM documents_chunk c
        WHERE c.document_id = %s AND c.embedding_model = %s AND vector_dims(c.embedding) = {d}
        ORDER BY c.position LIMIT %s
    ),
    doc_nn AS MATERIALIZED (
        SELECT d.id AS document_id
        FROM documents_document d
        WHERE vector_dims(d.embedding) = {d} AND d.embedding_model = %s AND d.id <> %s
          AND d.id IN (SELECT id FROM base)
        ORDER BY d.embedding{cast} <=> %s::vector({d})
        LIMIT %s
    ),
    chunk_nn AS MATERIALIZED ({chunk_nn}),
    cand AS (SELECT document_id FROM doc_nn UNION SELECT document_id FROM chunk_nn),
    pairs AS (
        SELECT DISTINCT ON (c.document_id) c.document_id, s.text AS source_text,
               c.id AS chunk_id, s.v <=> c.embedding::vector({d}) AS dist
        FROM src s CROSS JOIN documents_chunk c
        WHERE c.document_id IN (SELECT document_id FROM cand) AND c.embedding_model = %s
          AND vector_dims(c.embedding) = {d}
        ORDER BY c.document_id, dist, s.id, c.id
    ),
    scored AS (
        SELECT d.id AS document_id, d.title, p.source_text, p.chunk_id,
               1 - (d.embedding::vector({d}) <=> %s::vector({d})) AS raw_sim,
               {dot_centre} AS d_mu,
               1 - p.dist AS chunk_sim
        FROM cand JOIN documents_document d ON d.id = cand.document_id
        LEFT JOIN pairs p ON p.document_id = d.id
    ),
    centred AS (SELECT s.*, {doc_sim} AS doc_sim FROM scored s),
    kept AS (
        SELECT s.*, {_SCORES[method]} AS score, s.raw_sim >= %s AS is_duplicate,
               row_number() OVER (PARTITION BY s.raw_sim >= %s
                                  ORDER BY {_SCORES[method]} DESC, s.document_id) AS n
        FROM centred s
    )
    SELECT k.document_id, k.title, k.score, k.is_duplicate, k.source_text,
           left(c.text, {PASSAGE_CHARS * 2}), (SELECT count(*) FROM doc_nn)
    FROM kept k LEFT JOIN documents_chunk c ON c.id = k.chunk_id
    WHERE (NOT k.is_duplicate AND k.n <= %s) OR (k.is_duplicate AND k.n <= %s)
    ORDER BY k.score DESC, k.document_id
    LIMIT %s"""
    return sql, params
