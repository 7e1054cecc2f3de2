"""Rendering the app's ranking SQL into the ``analytics`` functions' statements.

The statements are the app's own (:mod:`search.ranking.backends.sql` and
:mod:`search.related`), composed as the backends compose them (keyword.py,
semantic.py, hybrid.py, related.py), so that ``analytics.keyword_search``
ranks exactly as the keyword backend does. Rendering replaces the app's
``%s`` parameters by ``EXECUTE ... USING`` placeholders bound to the
function's arguments, and the vector size by :data:`DIMS_TOKEN`, filled in
from ``vector_dims(query_embedding)`` at call time so the partial HNSW index
of that size is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from search.analytics.schema import PRIVATE_SCHEMA
from search.ranking.backends.sql import (
    VectorQuery,
    base_cte,
    base_query,
    compose,
    hybrid_select,
    keyword_bound_cte,
    keyword_ctes,
    semantic_ctes,
    semantic_fill_cte,
    visible_chunks_query,
)
from search.ranking.query import ParsedQuery

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from documents.models import Document
    from search.ranking.backends.sql import Fragment

#: Stands for the query vector's size in rendered SQL; replaced at call time.
DIMS_TOKEN: Final = "__DIMS__"
#: A size no model has, so that it can be found and replaced after rendering.
_DIMS_SENTINEL: Final = 918_273_645


@dataclass(frozen=True, slots=True)
class _Arg:
    """A PL/pgSQL expression standing in for one parameter of the app's SQL."""

    expression: str


# Arguments and variables of the rendered functions. Typed ``Any``: they
# travel through the app's SQL builders in place of ints, floats and strings.
_TERMS: Any = _Arg("terms")
_K: Any = _Arg("k")
_EMBEDDING: Any = _Arg("query_embedding")
_MODEL: Any = _Arg("s.embedding_model")
_CHUNK_LIMIT: Any = _Arg("v_chunk_limit")
_CANDIDATES: Any = _Arg("v_candidates")
# The app sends its float weights as numeric literals (psycopg's client-side
# binding), which makes RRF arithmetic numeric; the shortest text form of a
# float8 (extra_float_digits = 1) is Python's repr, so these are the same.
_KEYWORD_WEIGHT: Any = _Arg("(1 - v_weight)::text::numeric")
_SEMANTIC_WEIGHT: Any = _Arg("v_weight::text::numeric")
_DOCUMENT_ID: Any = _Arg("related_documents.document_id")
_SOURCE_EMBEDDING: Any = _Arg("v_source")
_SOURCE_MODEL: Any = _Arg("v_model")
_RELATED_K: Any = _Arg("v_k")
_DUPLICATE_THRESHOLD: Any = _Arg("v_threshold")

_PLACEHOLDER: Final = re.compile(r"%[s%]")


def _literal(value: object) -> str:
    """A constant parameter of the app's SQL, written into the function."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"cannot render the SQL parameter {value!r} into an analytics function")


def _bind(fragment: Fragment) -> tuple[str, list[str]]:
    """Replace the ``%s`` of ``fragment`` by ``$n``; return it and the USING list.

    An :class:`_Arg` becomes ``$n`` (one number per distinct expression);
    keyword_ctes passes the terms as ``list(query.terms)``, so a one-element
    list holding an ``_Arg`` stands for that argument. Constants are inlined.
    """
    sql, params = fragment
    values = iter(params)
    using: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        if match.group() == "%%":
            return "%"
        value = next(values)
        if isinstance(value, list | tuple) and len(value) == 1 and isinstance(value[0], _Arg):
            value = value[0]
        if not isinstance(value, _Arg):
            return _literal(value)
        if value.expression not in using:
            using.append(value.expression)
        return f"${using.index(value.expression) + 1}"

    rendered = _PLACEHOLDER.sub(substitute, sql)
    if next(values, None) is not None:
        raise ValueError("the SQL has fewer placeholders than parameters")
    return rendered, using


def _sized(sql: str) -> str:
    if str(_DIMS_SENTINEL) not in sql:
        raise ValueError("the rendered SQL does not use the vector size")
    return sql.replace(str(_DIMS_SENTINEL), DIMS_TOKEN)


def _visible() -> QuerySet[Document]:
    """The documents the role running a function may see, as a queryset."""
    from django.db.models.expressions import RawSQL

    from documents.models import Document

    visible = RawSQL(f"SELECT id FROM {PRIVATE_SCHEMA}.visible_document", ())
    return Document.objects.filter(pk__in=visible)


def _base() -> Fragment:
    """``base``: what the app's base_cte makes of the role's visible documents."""
    return base_cte(_visible())


def _terms_query() -> ParsedQuery:
    return ParsedQuery(text="", terms=(_TERMS,))


def _vector(*, exact: bool) -> VectorQuery:
    return VectorQuery(vector=_EMBEDDING, dimensions=_DIMS_SENTINEL, model=_MODEL, exact=exact)


_KEYWORD_SELECT: Final = """
    SELECT kw.document_id, d.title::text, kw.score::float8, kw.rank::integer
    FROM kw JOIN documents_document d ON d.id = kw.document_id
    ORDER BY kw.rank"""

_SEMANTIC_SELECT: Final = """
    SELECT array_agg(ROW(sem.document_id, d.title::text, sem.score::float8,
                         sem.rank::integer, sem.chunk_id, sem.matches::integer
                     )::analytics.semantic_hit ORDER BY sem.rank),
           (SELECT count(*) FROM sem_nn)
    FROM sem JOIN documents_document d ON d.id = sem.document_id"""

_HYBRID_SELECT: Final = """
    SELECT array_agg(ROW(h.document_id, d.title::text, h.fused::float8, h.n::integer,
                         h.keyword_rank::integer, h.keyword_score::float8,
                         h.semantic_rank::integer, h.semantic_score::float8, h.chunk_id
                     )::analytics.hybrid_hit ORDER BY h.n),
           (SELECT count(*) FROM sem_nn), (SELECT count(*) FROM sem)
    FROM (
        SELECT r.*, row_number() OVER (ORDER BY r.fused DESC, r.document_id) AS n
        FROM ({select}) AS r(document_id, fused, keyword_rank, keyword_score, semantic_rank,
                             semantic_score, chunk_id, chunk_matches, total)
    ) h JOIN documents_document d ON d.id = h.document_id"""

_RELATED_SELECT: Final = """
    SELECT array_agg(ROW(r.document_id, r.title::text, r.score::float8, r.n::integer,
                         r.possible_duplicate,
                         left(regexp_replace(r.source_text, '\\s+', ' ', 'g'), {chars}),
                         left(regexp_replace(r.related_text, '\\s+', ' ', 'g'), {chars})
                     )::analytics.related_hit ORDER BY r.n),
           max(r.scanned)
    FROM (
        SELECT x.*, row_number() OVER (ORDER BY x.score DESC, x.document_id) AS n
        FROM ({statement}) AS x(document_id, title, score, possible_duplicate, source_text,
                                related_text, scanned)
    ) r"""


def keyword_statement() -> tuple[str, list[str]]:
    """The keyword backend's statement over the analyst's documents."""
    return _bind(
        compose(_base(), keyword_ctes(_terms_query(), limit=_K), select=(_KEYWORD_SELECT, []))
    )


def semantic_statement(*, exact: bool) -> tuple[str, list[str]]:
    """The semantic backend's statement; one row: (hits, chunks scanned)."""
    sql, using = _bind(
        compose(
            _base(),
            semantic_ctes(
                _vector(exact=exact),
                base=base_query(_visible()),
                chunk_limit=_CHUNK_LIMIT,
                limit=_K,
            ),
            select=(_SEMANTIC_SELECT, []),
        )
    )
    return _sized(sql), using


def visible_chunks_statement() -> tuple[str, list[str]]:
    """How many chunks of the model the analyst may see (the rescan check)."""
    sql, using = _bind(visible_chunks_query(_vector(exact=False), base=base_query(_visible())))
    return _sized(sql), using


def hybrid_statement(*, fusion: str, exact: bool) -> tuple[str, list[str]]:
    """The hybrid backend's statement; one row: (hits, chunks scanned, sem rows)."""
    select_sql, select_params = hybrid_select(
        keyword_weight=_KEYWORD_WEIGHT,
        semantic_weight=_SEMANTIC_WEIGHT,
        fusion=fusion,
        limit=_K,
    )
    sql, using = _bind(
        compose(
            _base(),
            keyword_ctes(_terms_query(), limit=_CANDIDATES),
            keyword_bound_cte(_terms_query()),
            semantic_ctes(
                _vector(exact=exact),
                base=base_query(_visible()),
                chunk_limit=_CHUNK_LIMIT,
                limit=_CANDIDATES,
            ),
            semantic_fill_cte(_vector(exact=exact)),
            select=(_HYBRID_SELECT.replace("{select}", select_sql), select_params),
        )
    )
    return _sized(sql), using


def related_statement(*, exact: bool) -> tuple[str, list[str]]:
    """The related-documents statement of :mod:`search.related`."""
    from search.related import selectors as related

    source = related._Source(
        document_id=_DOCUMENT_ID,
        vector=_SOURCE_EMBEDDING,
        dimensions=_DIMS_SENTINEL,
        model=_SOURCE_MODEL,
        threshold=_DUPLICATE_THRESHOLD,
    )
    sql, params = related._statement(
        source,
        _visible(),
        method=related.DEFAULT_METHOD,
        k=_RELATED_K,
        candidates=_CANDIDATES,
        exact=exact,
    )
    wrapper = _RELATED_SELECT.replace("{chars}", str(related.PASSAGE_CHARS))
    sql, using = _bind((wrapper.replace("{statement}", sql), params))
    return _sized(sql), using
