"""The ``analytics`` schema's SQL functions and the statements that install them.

The PL/pgSQL bodies run the statements of :mod:`search.analytics.rendering`
and repeat the backends' small control flow: the exact-scan fallback, the
keyword-only hybrid for a weight of 0. The ranking parity tests hold the two
to the same results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from documents.embeddings import DEFAULT_DUPLICATE_THRESHOLD
from search.analytics.rendering import (
    DIMS_TOKEN,
    _literal,
    hybrid_statement,
    keyword_statement,
    related_statement,
    semantic_statement,
    visible_chunks_statement,
)
from search.analytics.schema import PRIVATE_SCHEMA, SCHEMA

#: The functions' search path: the app's tables, then ``pg_temp`` last so an
#: analyst's temporary objects can never stand in for them (pg_catalog is
#: searched first implicitly). See "Writing SECURITY DEFINER Functions
#: Safely" in the PostgreSQL manual (CREATE FUNCTION).
_SEARCH_PATH: Final = "public, pg_temp"

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
    from search.ranking.backends.semantic import CHUNKS_PER_DOCUMENT

    body = f"""
DECLARE
    s analytics_private.search_settings;
    v_dims integer := vector_dims(query_embedding);
    v_chunk_limit integer := k * {CHUNKS_PER_DOCUMENT};
    v_rows {SCHEMA}.semantic_hit[];
    v_scanned bigint;
    v_visible bigint;
BEGIN
    IF query_embedding IS NULL OR k IS NULL OR k < 1 THEN
        RETURN;
    END IF;{_settings_block(require_model=True)}
    {_execute(semantic_statement(exact=False), into="v_rows, v_scanned")};
    IF coalesce(cardinality(v_rows), 0) < k AND v_scanned < v_chunk_limit THEN
        -- As SemanticBackend (exact_scan_needed): a selective visibility
        -- filter can stop the index scan early, and an exact scan over the
        -- rest never misses; a scan that saw every visible chunk is final.
        {_execute(visible_chunks_statement(), into="v_visible")};
        IF v_scanned < v_visible THEN
            {_execute(semantic_statement(exact=True), into="v_rows, v_scanned")};
        END IF;
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
    from search.ranking.backends.semantic import CHUNKS_PER_DOCUMENT

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
    v_visible bigint;
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
    IF (v_rows IS NULL OR v_sem < v_candidates) AND v_nn < v_chunk_limit THEN
        -- As HybridBackend (exact_scan_needed): a selective filter starves
        -- the index scan; a scan that saw every visible chunk is final.
        {_execute(visible_chunks_statement(), into="v_visible")};
        IF v_nn < v_visible THEN
            {_hybrid_execute(exact=True)}
        END IF;
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
    from search.related import selectors as related

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
    v_threshold double precision;
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
    v_threshold := coalesce((s.duplicate_thresholds ->> v_model)::float8,
                            {DEFAULT_DUPLICATE_THRESHOLD!r});
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
    """A character class body of :mod:`documents.analysis`, non-ASCII as regex escapes."""
    return "".join(c if c.isascii() else f"\\u{ord(c):04x}" for c in characters)


def _detect_language_body() -> str:
    """documents.analysis.detect_language in SQL, from its own character classes."""
    from documents import analysis

    latin = re.fullmatch(r"\[(.*)\]\+", analysis._LATIN_RUN_RE.pattern)
    if latin is None:
        raise ValueError("documents.analysis._LATIN_RUN_RE is no longer one character class")
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
    # As search.ranking.backends.hybrid.semantic_weight_for.
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
            "documents.analysis.detect_language.",
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
