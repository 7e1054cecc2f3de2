"""The analysts' SQL surface: the ``analytics`` schema's functions and roles.

Analysts query PostgreSQL directly (psql, a BI tool, a notebook) through the
``analytics`` schema: views created by migrations, and search functions
whose SQL is *rendered here from the app's own ranking SQL*
(:mod:`search.backends.sql` and :mod:`search.related`), so that
``analytics.keyword_search`` ranks exactly as the keyword backend does.
Rendering replaces the app's ``%s`` parameters by ``EXECUTE ... USING``
placeholders bound to the function's arguments, and the vector size by
:data:`DIMS_TOKEN`, filled in from ``vector_dims(query_embedding)`` at call
time so the partial HNSW index of that size is used.

The statements are composed as the backends compose them (keyword.py,
semantic.py, hybrid.py, related.py), and the PL/pgSQL bodies repeat their
small control flow: the exact-scan fallback, the keyword-only hybrid for a
weight of 0. The ranking parity tests hold the two to the same results.

The rendered SQL is frozen into a migration by
:func:`write_functions_migration`; ``tests/search/test_analytics.py``
compares the installed functions with a fresh rendering, so a change to the
ranking SQL without a new migration fails the suite.

What the SQL cannot know (the embedding model, its per-language weights,
fusion, candidates) lives in ``analytics_private.search_settings``, written
by :func:`sync_search_settings`. Who sees which document, and the roles
themselves: see :func:`analyst_role_create` and ``docs/analysts.md``.
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import connection, transaction

from search.backends.sql import (
    VectorQuery,
    base_cte,
    base_query,
    compose,
    hybrid_select,
    keyword_ctes,
    semantic_ctes,
)
from search.query import ParsedQuery

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from django.db.models import QuerySet

    from documents.models import Document
    from search.backends.sql import Fragment

logger = logging.getLogger(__name__)

SCHEMA: Final = "analytics"
PRIVATE_SCHEMA: Final = "analytics_private"
#: Stands for the query vector's size in rendered SQL; replaced at call time.
DIMS_TOKEN: Final = "__DIMS__"
#: A size no model has, so that it can be found and replaced after rendering.
_DIMS_SENTINEL: Final = 918_273_645
#: The functions' search path: the app's tables, then ``pg_temp`` last so an
#: analyst's temporary objects can never stand in for them (pg_catalog is
#: searched first implicitly). See "Writing SECURITY DEFINER Functions
#: Safely" in the PostgreSQL manual (CREATE FUNCTION).
_SEARCH_PATH: Final = "public, pg_temp"
_ROLE_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")


# --- Rendering ------------------------------------------------------------


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
    return VectorQuery(literal=_EMBEDDING, dimensions=_DIMS_SENTINEL, model=_MODEL, exact=exact)


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
            semantic_ctes(
                _vector(exact=exact),
                base=base_query(_visible()),
                chunk_limit=_CHUNK_LIMIT,
                limit=_CANDIDATES,
            ),
            select=(_HYBRID_SELECT.replace("{select}", select_sql), select_params),
        )
    )
    return _sized(sql), using


def related_statement(*, exact: bool) -> tuple[str, list[str]]:
    """The related-documents statement of :mod:`search.related`."""
    from search import related

    source = related._Source(
        document_id=_DOCUMENT_ID,
        literal=_SOURCE_EMBEDDING,
        dimensions=_DIMS_SENTINEL,
        model=_SOURCE_MODEL,
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


# --- The functions --------------------------------------------------------

#: Result types of the search functions (one definition for the function
#: results and the arrays their bodies collect rows in).
RESULT_TYPES: Final[dict[str, str]] = {
    "keyword_hit": "document_id bigint, title text, score double precision, rank integer",
    "semantic_hit": "document_id bigint, title text, score double precision, rank integer, "
    "chunk_id bigint, chunk_matches integer",
    "hybrid_hit": "document_id bigint, title text, score double precision, rank integer, "
    "keyword_rank integer, keyword_score double precision, semantic_rank integer, "
    "semantic_score double precision, chunk_id bigint",
    "related_hit": "document_id bigint, title text, score double precision, rank integer, "
    "possible_duplicate boolean, source_passage text, related_passage text",
}


@dataclass(frozen=True, slots=True)
class SqlFunction:
    """One function of the ``analytics`` schema, as CREATE FUNCTION needs it."""

    name: str
    #: As in CREATE FUNCTION, defaults included.
    arguments: str
    returns: str
    body: str
    comment: str
    language: str = "plpgsql"
    volatility: str = "STABLE"
    #: Runs with its owner's privileges (reads the app's tables).
    definer: bool = False
    #: Sets the HNSW search options for its own duration.
    hnsw: bool = False
    #: Further ``SET`` clauses.
    config: tuple[str, ...] = ()

    @property
    def identity(self) -> str:
        """``name(argument types)``, as REVOKE and COMMENT name it."""
        arguments = re.sub(r"\s+DEFAULT\s+[^,]+", "", self.arguments)
        return f"{SCHEMA}.{self.name}({arguments})"

    def statements(self) -> list[str]:
        options = [f"LANGUAGE {self.language}", self.volatility]
        if self.definer:
            options += ["SECURITY DEFINER", f"SET search_path = {_SEARCH_PATH}"]
        if self.hnsw:
            # Scoped to the call: the body's set_config('hnsw.ef_search')
            # is undone on return because of this SET clause.
            options += ["SET hnsw.ef_search = 40", "SET hnsw.iterative_scan = relaxed_order"]
        options += [f"SET {clause}" for clause in self.config]
        create = (
            f"CREATE FUNCTION {SCHEMA}.{self.name}({self.arguments})\n"
            f"RETURNS {self.returns}\n" + "\n".join(options) + f"\nAS $fn${self.body}$fn$;"
        )
        return [
            create,
            f"REVOKE ALL ON FUNCTION {self.identity} FROM PUBLIC;",
            f"COMMENT ON FUNCTION {self.identity} IS {_literal(self.comment)};",
        ]


def _execute(statement: tuple[str, list[str]], *, into: str = "", sized: bool = True) -> str:
    """``EXECUTE`` of a rendered statement, for a PL/pgSQL body."""
    sql, using = statement
    if "$q$" in sql:
        raise ValueError("the rendered SQL contains the quote tag $q$")
    text = f"$q${sql}\n$q$"
    if sized:
        text = f"replace({text}, '{DIMS_TOKEN}', v_dims::text)"
    lines = [f"EXECUTE {text}"]
    if into:
        lines.append(f"    INTO {into}")
    if using:
        lines.append("    USING " + ", ".join(using))
    return "\n".join(lines)


def _settings_block(*, require_model: bool) -> str:
    check = "s.embedding_model IS NULL" if require_model else "s.hnsw_ef_search IS NULL"
    return f"""
    SELECT * INTO s FROM analytics_private.search_settings;
    IF {check} THEN
        RAISE EXCEPTION 'analytics: the search settings are not recorded'
            USING HINT = 'Run: python manage.py create_analyst_role --sync-settings';
    END IF;
    PERFORM set_config('hnsw.ef_search', s.hnsw_ef_search::text, true);"""


def _keyword_search() -> SqlFunction:
    body = f"""
BEGIN
    IF k IS NULL OR k < 1 OR coalesce(cardinality(terms), 0) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY {_execute(keyword_statement(), sized=False)};
END
"""
    return SqlFunction(
        name="keyword_search",
        arguments="terms text[], k integer DEFAULT 10",
        returns=f"SETOF {SCHEMA}.keyword_hit",
        body=body,
        definer=True,
        comment="BM25 ranking of the visible documents for analysed terms, as the app's "
        "keyword search (terms: python manage.py analyze_query).",
    )


def _semantic_search() -> SqlFunction:
    from search.backends.semantic import CHUNKS_PER_DOCUMENT

    body = f"""
DECLARE
    s analytics_private.search_settings;
    v_dims integer := vector_dims(query_embedding);
    v_chunk_limit integer := k * {CHUNKS_PER_DOCUMENT};
    v_rows {SCHEMA}.semantic_hit[];
    v_scanned bigint;
BEGIN
    IF query_embedding IS NULL OR k IS NULL OR k < 1 THEN
        RETURN;
    END IF;{_settings_block(require_model=True)}
    {_execute(semantic_statement(exact=False), into="v_rows, v_scanned")};
    IF coalesce(cardinality(v_rows), 0) < k AND v_scanned < v_chunk_limit THEN
        -- As SemanticBackend: a selective visibility filter can stop the
        -- index scan early; an exact scan over the rest never misses.
        {_execute(semantic_statement(exact=True), into="v_rows, v_scanned")};
    END IF;
    RETURN QUERY SELECT * FROM unnest(v_rows);
END
"""
    return SqlFunction(
        name="semantic_search",
        arguments="query_embedding vector, k integer DEFAULT 10",
        returns=f"SETOF {SCHEMA}.semantic_hit",
        body=body,
        definer=True,
        hnsw=True,
        comment="Nearest visible documents to a query embedding (HNSW over chunks, best "
        "chunk per document), as the app's semantic search "
        "(vector: python manage.py embed_query).",
    )


def _hybrid_execute(*, exact: bool) -> str:
    into = "v_rows, v_nn, v_sem"
    return f"""IF s.fusion = 'rrf' THEN
        {_execute(hybrid_statement(fusion="rrf", exact=exact), into=into)};
    ELSE
        {_execute(hybrid_statement(fusion="convex", exact=exact), into=into)};
    END IF;"""


def _hybrid_search() -> SqlFunction:
    from search.backends.semantic import CHUNKS_PER_DOCUMENT

    body = f"""
DECLARE
    s analytics_private.search_settings;
    v_dims integer := vector_dims(query_embedding);
    v_weight float8;
    v_candidates integer;
    v_chunk_limit integer;
    v_rows {SCHEMA}.hybrid_hit[];
    v_nn bigint;
    v_sem bigint;
BEGIN
    IF query_embedding IS NULL OR k IS NULL OR k < 1
       OR coalesce(cardinality(terms), 0) = 0 THEN
        RETURN;
    END IF;{_settings_block(require_model=True)}
    v_weight := coalesce(semantic_weight, {SCHEMA}.semantic_weight(array_to_string(terms, ' ')));
    IF v_weight <= 0 THEN
        -- As HybridBackend: the model has no say for this language.
        RETURN QUERY SELECT h.document_id, h.title, h.score, h.rank, h.rank, h.score,
                            NULL::integer, NULL::float8, NULL::bigint
                     FROM {SCHEMA}.keyword_search(terms, k) h;
        RETURN;
    END IF;
    v_candidates := greatest(k, s.candidates);
    v_chunk_limit := v_candidates * {CHUNKS_PER_DOCUMENT};
    {_hybrid_execute(exact=False)}
    IF v_rows IS NULL OR (v_nn < v_chunk_limit AND v_sem < v_candidates) THEN
        -- As HybridBackend: a selective filter starves the index scan.
        {_hybrid_execute(exact=True)}
    END IF;
    RETURN QUERY SELECT * FROM unnest(v_rows);
END
"""
    return SqlFunction(
        name="hybrid_search",
        arguments="terms text[], query_embedding vector, k integer DEFAULT 10, "
        "semantic_weight double precision DEFAULT NULL",
        returns=f"SETOF {SCHEMA}.hybrid_hit",
        body=body,
        definer=True,
        hnsw=True,
        config=("extra_float_digits = 1",),
        comment="Keyword and semantic rankings fused as the app's hybrid search; "
        "semantic_weight NULL: the app's per-language weight (analytics.semantic_weight).",
    )


def _related_documents() -> SqlFunction:
    from search import related

    candidates = (
        f"greatest({related.MIN_CANDIDATES}, v_k * {related.CANDIDATES_PER_RESULT})"
        f" + {related.MAX_DUPLICATES}"
    )
    body = f"""
DECLARE
    s analytics_private.search_settings;
    v_k integer := least(k, {related.MAX_K});
    v_source vector;
    v_dims integer;
    v_model text;
    v_candidates integer;
    v_rows {SCHEMA}.related_hit[];
    v_scanned bigint;
BEGIN
    IF k IS NULL OR v_k < 1 THEN
        RETURN;
    END IF;
    SELECT d.embedding, vector_dims(d.embedding), d.embedding_model
    INTO v_source, v_dims, v_model
    FROM documents_document d
    WHERE d.id = related_documents.document_id AND d.embedding IS NOT NULL
      AND d.id IN (SELECT v.id FROM analytics_private.visible_document v);
    IF NOT FOUND THEN
        RETURN;
    END IF;{_settings_block(require_model=False)}
    v_candidates := {candidates};
    {_execute(related_statement(exact=False), into="v_rows, v_scanned")};
    IF coalesce(cardinality(v_rows), 0) < v_k AND coalesce(v_scanned, 0) < v_candidates THEN
        {_execute(related_statement(exact=True), into="v_rows, v_scanned")};
    END IF;
    RETURN QUERY SELECT * FROM unnest(v_rows);
END
"""
    return SqlFunction(
        name="related_documents",
        arguments="document_id bigint, k integer DEFAULT 5",
        returns=f"SETOF {SCHEMA}.related_hit",
        body=body,
        definer=True,
        hnsw=True,
        comment="Visible documents most like a document, as the app's related-documents "
        "panel (its default method; possible copies flagged).",
    )


def _regex_class(characters: str) -> str:
    """A character class body of :mod:`search.analysis`, non-ASCII as regex escapes."""
    return "".join(c if c.isascii() else f"\\u{ord(c):04x}" for c in characters)


def _detect_language_body() -> str:
    """search.analysis.detect_language in SQL, from its own character classes."""
    from search import analysis

    latin = re.fullmatch(r"\[(.*)\]\+", analysis._LATIN_RUN_RE.pattern)
    if latin is None:
        raise ValueError("search.analysis._LATIN_RUN_RE is no longer one character class")
    hangul, latin_class = _regex_class(analysis._HANGUL_CHARS), _regex_class(latin.group(1))
    share = repr(float(analysis.MIXED_MIN_SHARE))
    # Letters: Python's str.isalpha; Hangul counted apart so that a server
    # locale that classifies only ASCII still counts it.
    return f"""
    SELECT CASE WHEN c.letters = 0 THEN 'en'
                WHEN c.hangul::float8 / c.letters >= {share}
                     AND c.latin::float8 / c.letters >= {share} THEN 'mixed'
                WHEN c.hangul > c.latin THEN 'ko'
                ELSE 'en' END
    FROM (
        SELECT h.hangul, length(regexp_replace(n.t, '[^{latin_class}]', '', 'g')) AS latin,
               h.hangul + length(regexp_replace(n.t, '[^[:alpha:]]|[{hangul}]', '', 'g'))
                   AS letters
        FROM (SELECT normalize(coalesce(query, ''), NFKC) AS t) n
        CROSS JOIN LATERAL (
            SELECT length(regexp_replace(n.t, '[^{hangul}]', '', 'g')) AS hangul
        ) h
    ) c
"""


def _language_functions() -> list[SqlFunction]:
    terms = """
    SELECT coalesce(array_agg(t.lexeme ORDER BY t.positions[1], t.lexeme), ARRAY[]::text[])
    FROM unnest(to_tsvector('english', coalesce(query, ''))) AS t
"""
    # As search.backends.hybrid.semantic_weight_for.
    weight = f"""
    SELECT coalesce(s.semantic_weight_override,
                    CASE {SCHEMA}.detect_language(query)
                        WHEN 'mixed' THEN least(s.semantic_weight_ko, s.semantic_weight_en)
                        WHEN 'ko' THEN s.semantic_weight_ko
                        ELSE s.semantic_weight_en END)
    FROM analytics_private.search_settings s
"""
    return [
        SqlFunction(
            name="detect_language",
            arguments="query text",
            returns="text",
            body=_detect_language_body(),
            language="sql",
            volatility="IMMUTABLE",
            comment="'ko', 'en' or 'mixed' from the Hangul and Latin letter shares, as "
            "search.analysis.detect_language.",
        ),
        SqlFunction(
            name="english_terms",
            arguments="query text",
            returns="text[]",
            body=terms,
            language="sql",
            volatility="IMMUTABLE",
            comment="English stems of a text (to_tsvector('english')): close to the app's "
            "analysis for English, not for Korean (use python manage.py analyze_query).",
        ),
        SqlFunction(
            name="semantic_weight",
            arguments="query text",
            returns="double precision",
            body=weight,
            language="sql",
            definer=True,
            comment="Weight of the semantic leg of hybrid search for a query, as the app "
            "chooses it (the provider's weight for its language; the lesser one if mixed).",
        ),
    ]


def _convenience_functions() -> list[SqlFunction]:
    keyword = f"""
    SELECT * FROM {SCHEMA}.keyword_search({SCHEMA}.english_terms(query), k)
"""
    hybrid = f"""
    SELECT * FROM {SCHEMA}.hybrid_search({SCHEMA}.english_terms(query), query_embedding, k,
                                        coalesce(semantic_weight, {SCHEMA}.semantic_weight(query)))
"""
    return [
        SqlFunction(
            name="keyword_search",
            arguments="query text, k integer DEFAULT 10",
            returns=f"SETOF {SCHEMA}.keyword_hit",
            body=keyword,
            language="sql",
            comment="keyword_search over analytics.english_terms(query): English only.",
        ),
        SqlFunction(
            name="hybrid_search",
            arguments="query text, query_embedding vector, k integer DEFAULT 10, "
            "semantic_weight double precision DEFAULT NULL",
            returns=f"SETOF {SCHEMA}.hybrid_hit",
            body=hybrid,
            language="sql",
            comment="hybrid_search over analytics.english_terms(query): English only.",
        ),
    ]


def analytics_functions() -> list[SqlFunction]:
    """Every function of the ``analytics`` schema, rendered now."""
    return [
        *_language_functions(),
        _keyword_search(),
        _semantic_search(),
        _hybrid_search(),
        _related_documents(),
        *_convenience_functions(),
    ]


#: Drops what a functions migration creates, so that each one installs the
#: whole set afresh (signatures and result types may change).
DROP_FUNCTIONS_SQL: Final = f"""DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT p.oid::regprocedure AS f FROM pg_proc p
             WHERE p.pronamespace = '{SCHEMA}'::regnamespace LOOP
        EXECUTE format('DROP FUNCTION %s', r.f);
    END LOOP;
    FOR r IN SELECT t.oid::regtype AS t FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid
             WHERE t.typnamespace = '{SCHEMA}'::regnamespace AND c.relkind = 'c' LOOP
        EXECUTE format('DROP TYPE %s', r.t);
    END LOOP;
END $$;"""


def functions_sql() -> list[str]:
    """The statements that install the schema's types and functions."""
    statements = [DROP_FUNCTIONS_SQL]
    for name, columns in RESULT_TYPES.items():
        statements.append(f"CREATE TYPE {SCHEMA}.{name} AS ({columns});")
    for function in analytics_functions():
        statements += function.statements()
    statements.append(f"SELECT {PRIVATE_SCHEMA}.grant_analysts();")
    return statements


_MIGRATION_TEMPLATE: Final = '''"""Install the analytics schema's SQL functions, rendered by search.analytics.

Generated by ``search.analytics.write_functions_migration()``: do not edit.
The function bodies are the app's ranking SQL (search/backends/sql.py,
search/related.py) as it was when this file was written; when that SQL
changes, tests/search/test_analytics.py fails until a new migration like
this one is generated.
"""

from django.db import migrations

FUNCTIONS_SQL = [
{statements}
]

PREVIOUS_SQL = [
{previous}
]


class Migration(migrations.Migration):
    dependencies = [
        ("search", "{dependency}"),
        ("documents", "{documents}"),
    ]

    operations = [migrations.RunSQL(FUNCTIONS_SQL, PREVIOUS_SQL)]
'''


def _python_strings(statements: Iterable[str]) -> str:
    lines = []
    for statement in statements:
        if '"""' in statement or statement.endswith("\\"):
            lines.append(f"    {statement!r},")
        else:
            lines.append(f'    r"""{statement}""",')
    return "\n".join(lines)


def write_functions_migration(directory: Path | None = None) -> Path:
    """Write ``search/migrations/00NN_analytics_functions.py``; return its path.

    Run it after changing the ranking SQL::

        python manage.py shell -c "from search.analytics import write_functions_migration; \\
            write_functions_migration()"
    """
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    leaves = loader.graph.leaf_nodes("search")
    if len(leaves) != 1:
        raise RuntimeError(f"search has {len(leaves)} leaf migrations; merge them first")
    leaf = leaves[0][1]
    # The functions read the documents app's tables as they are now.
    (documents_leaf,) = loader.graph.leaf_nodes("documents")
    previous = [DROP_FUNCTIONS_SQL]
    for key in sorted(k for k in loader.disk_migrations if k[0] == "search"):
        module = importlib.import_module(type(loader.disk_migrations[key]).__module__)
        previous = list(getattr(module, "FUNCTIONS_SQL", previous))
    directory = directory or Path(__file__).resolve().parent / "migrations"
    path = directory / f"{int(leaf[:4]) + 1:04d}_analytics_functions.py"
    path.write_text(
        _MIGRATION_TEMPLATE.format(
            statements=_python_strings(functions_sql()),
            previous=_python_strings(previous),
            dependency=leaf,
            documents=documents_leaf[1],
        ),
        encoding="utf-8",
    )
    return path


# --- Search settings ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchSettings:
    """What the SQL functions need from the app's configuration."""

    embedding_model: str | None
    embedding_dimensions: int | None
    semantic_weight_en: float | None
    semantic_weight_ko: float | None
    semantic_weight_override: float | None
    fusion: str
    candidates: int
    hnsw_ef_search: int


def current_search_settings(*, strict: bool = True) -> SearchSettings:
    """The settings as the app reads them now (loads the embedding provider).

    With ``strict=False`` a provider that cannot be loaded leaves the model
    and its weights unset instead of raising (migrations use this).
    """
    from documents.embeddings import get_embedder

    model = dimensions = weight_en = weight_ko = None
    try:
        embedder = get_embedder()
    except Exception:
        if strict:
            raise
        logger.warning(
            "No embedding provider: analytics settings recorded without a model", exc_info=True
        )
    else:
        model, dimensions = embedder.name, int(embedder.dimensions)
        weight_en = float(embedder.semantic_weights.get("en", 0.0))
        weight_ko = float(embedder.semantic_weights.get("ko", 0.0))
    override = settings.SEARCH_SEMANTIC_WEIGHT
    return SearchSettings(
        embedding_model=model,
        embedding_dimensions=dimensions,
        semantic_weight_en=weight_en,
        semantic_weight_ko=weight_ko,
        semantic_weight_override=None if override is None else float(override),
        fusion=str(settings.SEARCH_FUSION),
        candidates=int(settings.SEARCH_CANDIDATES),
        hnsw_ef_search=int(settings.SEARCH_HNSW_EF_SEARCH),
    )


def sync_search_settings(*, strict: bool = True, using: Any = None) -> SearchSettings:
    """Record the current settings in ``analytics_private.search_settings``."""
    values = current_search_settings(strict=strict)
    fields = list(SearchSettings.__dataclass_fields__)
    with (using or connection).cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {PRIVATE_SCHEMA}.search_settings (id, {', '.join(fields)}, updated_at)"
            f" VALUES (true, {', '.join(['%s'] * len(fields))}, now())"
            f" ON CONFLICT (id) DO UPDATE SET "
            + ", ".join(f"{f} = EXCLUDED.{f}" for f in [*fields, "updated_at"]),
            [getattr(values, f) for f in fields],
        )
    return values


def recorded_search_settings() -> SearchSettings | None:
    """The settings the SQL functions use now, or None before the first sync."""
    fields = list(SearchSettings.__dataclass_fields__)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(fields)} FROM {PRIVATE_SCHEMA}.search_settings")
        row = cursor.fetchone()
    return None if row is None else SearchSettings(*row)


# --- Analyst roles --------------------------------------------------------


class AnalystRoleError(Exception):
    """An analyst role cannot be created, changed or dropped as asked."""


def _check_role_name(name: str) -> None:
    if not _ROLE_NAME.fullmatch(name) or name.startswith("pg_"):
        raise AnalystRoleError(
            f"invalid role name {name!r}: use lowercase letters, digits and _ "
            "(at most 63, not starting with a digit or pg_)"
        )


def _utility(cursor: Any, template: str, **parts: object) -> None:
    """Run a utility statement (they take no parameters): values are quoted
    by psycopg, ``{role}`` and ``{database}`` as identifiers."""
    from psycopg import sql

    composed = sql.SQL(template).format(
        **{
            key: sql.Identifier(str(value)) if key in ("role", "database") else sql.Literal(value)
            for key, value in parts.items()
        }
    )
    cursor.execute(composed.as_string(connection.connection))


def _prepare_role(cursor: Any, name: str) -> bool:
    """Create the role, or check that an existing one is ours; True if created."""
    cursor.execute(f"SELECT 1 FROM pg_namespace WHERE nspname = '{PRIVATE_SCHEMA}'")
    if cursor.fetchone() is None:
        raise AnalystRoleError("the analytics schema is missing: run python manage.py migrate")
    cursor.execute("SELECT has_schema_privilege('public', 'public', 'CREATE')")
    if cursor.fetchone()[0]:
        raise AnalystRoleError(
            "every role may create objects in schema public, so an analyst could shadow "
            "the functions' operators; run REVOKE CREATE ON SCHEMA public FROM PUBLIC "
            "(the default since PostgreSQL 15) first"
        )
    cursor.execute(
        "SELECT r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication"
        " OR r.rolbypassrls, EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid),"
        f" EXISTS (SELECT 1 FROM {PRIVATE_SCHEMA}.analyst_roles a WHERE a.role_name = r.rolname)"
        " FROM pg_roles r WHERE r.rolname = %s",
        [name],
    )
    row = cursor.fetchone()
    if row is None:
        _utility(cursor, "CREATE ROLE {role} LOGIN NOINHERIT", role=name)
    elif not row[2]:
        raise AnalystRoleError(f"role {name} exists and was not created by create_analyst_role")
    elif row[0] or row[1]:
        raise AnalystRoleError(
            f"role {name} has privileges or memberships an analyst must not have"
        )
    cursor.execute(
        f"INSERT INTO {PRIVATE_SCHEMA}.analyst_roles (role_name) VALUES (%s)"
        " ON CONFLICT DO NOTHING",
        [name],
    )
    return row is None


#: What a new role gets when the command does not say.
DEFAULT_STATEMENT_TIMEOUT: Final = "30s"
DEFAULT_CONNECTION_LIMIT: Final = 10


def _configure_role(
    cursor: Any,
    name: str,
    *,
    password: str | None,
    statement_timeout: str | None,
    connection_limit: int | None,
) -> None:
    """Attributes and session defaults (``ALTER ROLE ... SET``) of an analyst.

    Session defaults are not limits: a session may change them. What
    protects the app is the privileges; these keep a careless query from
    hurting it. ``None`` keeps the role's current value.
    """
    # The other attributes (NOSUPERUSER, NOCREATEROLE, ...) are CREATE
    # ROLE's defaults, checked by _prepare_role; naming them here would need
    # superuser rights the app's role need not have.
    _utility(cursor, "ALTER ROLE {role} LOGIN NOINHERIT", role=name)
    if connection_limit is not None:
        _utility(
            cursor,
            "ALTER ROLE {role} CONNECTION LIMIT {limit}",
            role=name,
            limit=int(connection_limit),
        )
    if password is not None:
        verifier = connection.connection.pgconn.encrypt_password(
            password.encode(), name.encode()
        ).decode()
        _utility(cursor, "ALTER ROLE {role} PASSWORD {verifier}", role=name, verifier=verifier)
    defaults: list[tuple[str, object]] = [
        ("default_transaction_read_only", "on"),
        ("idle_in_transaction_session_timeout", "15min"),
        ("timezone", settings.TIME_ZONE),
    ]
    if statement_timeout is not None:
        defaults.append(("statement_timeout", statement_timeout))
    for parameter, value in defaults:
        _utility(cursor, f"ALTER ROLE {{role}} SET {parameter} = {{value}}", role=name, value=value)
    # A list: quoted as one literal it would name a single schema.
    _utility(cursor, "ALTER ROLE {role} SET search_path = analytics, public", role=name)


def _set_groups(cursor: Any, name: str, *, grant: Sequence[str], revoke: Sequence[str]) -> None:
    from django.contrib.auth.models import Group

    for group_name, query in (
        *(
            (g, "INSERT INTO {t} (role_name, group_id) VALUES (%s, %s) ON CONFLICT DO NOTHING")
            for g in grant
        ),
        *((g, "DELETE FROM {t} WHERE role_name = %s AND group_id = %s") for g in revoke),
    ):
        group_id = Group.objects.filter(name=group_name).values_list("pk", flat=True).first()
        if group_id is None:
            raise AnalystRoleError(f"no group named {group_name!r}")
        cursor.execute(query.format(t=f"{PRIVATE_SCHEMA}.role_group_grants"), [name, group_id])


def analyst_role_create(
    *,
    name: str,
    password: str | None = None,
    statement_timeout: str | None = None,
    connection_limit: int | None = None,
    grant_groups: Sequence[str] = (),
    revoke_groups: Sequence[str] = (),
) -> bool:
    """Create or update a read-only LOGIN role for the analytics schema.

    Idempotent. The role may SELECT the ``analytics`` views and EXECUTE its
    functions, nothing else; it sees restricted documents only of the
    groups granted to it. The password is sent as a SCRAM verifier, never
    in clear. Options left ``None`` keep an existing role's value (a new
    role gets the defaults). Returns whether the role was created. Needs
    CREATEROLE.
    """
    _check_role_name(name)
    with transaction.atomic(), connection.cursor() as cursor:
        created = _prepare_role(cursor, name)
        if created:
            statement_timeout = statement_timeout or DEFAULT_STATEMENT_TIMEOUT
            connection_limit = connection_limit or DEFAULT_CONNECTION_LIMIT
        _configure_role(
            cursor,
            name,
            password=password,
            statement_timeout=statement_timeout,
            connection_limit=connection_limit,
        )
        cursor.execute(f"SELECT {PRIVATE_SCHEMA}.grant_analyst(%s)", [name])
        _set_groups(cursor, name, grant=grant_groups, revoke=revoke_groups)
    sync_search_settings()
    return created


def analyst_role_drop(*, name: str) -> None:
    """Drop an analyst role and everything granted to it in this database."""
    _check_role_name(name)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {PRIVATE_SCHEMA}.analyst_roles WHERE role_name = %s RETURNING 1",
            [name],
        )
        if cursor.fetchone() is None:
            raise AnalystRoleError(f"{name} is not an analyst role of this database")
        cursor.execute(
            "SELECT pg_has_role(current_user, r.oid, 'USAGE'), current_database()"
            " FROM pg_roles r WHERE r.rolname = %s",
            [name],
        )
        if (row := cursor.fetchone()) is None:
            return  # Dropped by hand already.
        for statement in _REVOKE_ANALYST:
            _utility(cursor, statement, role=name, database=row[1])
        if row[0]:
            # Also default privileges and the like; a role with CREATEROLE
            # but not the analyst's privileges may not (PostgreSQL 16+).
            _utility(cursor, "DROP OWNED BY {role}", role=name)
        _utility(cursor, "DROP ROLE {role}", role=name)


#: What analytics_private.grant_analyst grants (analysts own nothing).
_REVOKE_ANALYST: Final = (
    "REVOKE ALL ON ALL TABLES IN SCHEMA analytics FROM {role}",
    "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA analytics FROM {role}",
    "REVOKE ALL ON SCHEMA analytics FROM {role}",
    "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA analytics_private FROM {role}",
    "REVOKE ALL ON SCHEMA analytics_private FROM {role}",
    "REVOKE ALL ON SCHEMA public FROM {role}",
    "REVOKE ALL ON DATABASE {database} FROM {role}",
)


def analyst_dsn(name: str) -> str:
    """A libpq connection URI for role ``name`` to the app's database (no password)."""
    config = connection.settings_dict
    options = config.get("OPTIONS") or {}
    host, port = config["HOST"] or options.get("host", ""), str(config["PORT"] or "")
    user, database = quote(name, safe=""), quote(config["NAME"], safe="")
    query: dict[str, str] = {}
    if not host or host.startswith("/"):
        # A Unix socket: libpq takes its directory as the host parameter.
        netloc = f"{user}@"
        query.update({"host": host} if host else {})
        query.update({"port": port} if port else {})
    else:
        netloc = f"{user}@{f'[{host}]' if ':' in host else host}" + (f":{port}" if port else "")
        if sslmode := options.get("sslmode"):
            query["sslmode"] = sslmode
    uri = f"postgresql://{netloc}/{database}"
    return f"{uri}?{urlencode(query, safe='/')}" if query else uri


def terms_array_literal(terms: Sequence[str]) -> str:
    """``ARRAY['a','b']::text[]``: analysed terms for the SQL functions."""
    quoted = ",".join("'" + term.replace("'", "''") + "'" for term in terms)
    return f"ARRAY[{quoted}]::text[]"
