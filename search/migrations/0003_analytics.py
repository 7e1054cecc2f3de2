"""The analysts' schema: stable views over documents, chunks and search logs.

``analytics`` holds what analysts may read (see docs/analysts.md);
``analytics_private`` holds what only the app's own role touches: the roles
created by ``create_analyst_role``, the groups granted to each, and the
search settings the SQL functions read. The functions themselves are
installed after every migrate (search.analytics.install), not by a migration.

Who sees a document: the app's owner role and superusers see all; any
other role sees a document without groups, or one with a group granted to
it in ``analytics_private.role_group_grants``. "The role" is the current
role (``SET ROLE`` included) even inside the SECURITY DEFINER search
functions, where ``current_user`` is the owner: see ``invoking_role``.
Views that filter are ``security_barrier`` so that a leaky function in an
analyst's WHERE clause cannot see the rows filtered out.
"""

from django.db import migrations

PRIVATE = [
    """CREATE SCHEMA analytics_private""",
    """COMMENT ON SCHEMA analytics_private IS
    'Internals of the analytics schema; analysts have no access.'""",
    """CREATE SCHEMA analytics""",
    """COMMENT ON SCHEMA analytics IS
    'Stable views and functions for analysts: see docs/analysts.md.'""",
    """CREATE TABLE analytics_private.analyst_roles (
        role_name name PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now()
    )""",
    # No foreign key to auth_group: Django's test flush truncates auth_group
    # without CASCADE. A grant of a deleted group matches no document.
    """CREATE TABLE analytics_private.role_group_grants (
        role_name name NOT NULL
            REFERENCES analytics_private.analyst_roles ON DELETE CASCADE,
        group_id integer NOT NULL,
        granted_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (role_name, group_id)
    )""",
    """CREATE TABLE analytics_private.search_settings (
        id boolean PRIMARY KEY DEFAULT true CHECK (id),
        embedding_model text,
        embedding_dimensions integer,
        semantic_weight_en double precision,
        semantic_weight_ko double precision,
        semantic_weight_override double precision,
        fusion text NOT NULL,
        candidates integer NOT NULL,
        hnsw_ef_search integer NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    )""",
    # The role a query runs for. Outside functions that is current_user; in a
    # SECURITY DEFINER function current_user is the owner, but the "role"
    # setting still names the SET ROLE role (none: the session user).
    """CREATE FUNCTION analytics_private.invoking_role() RETURNS name
    LANGUAGE sql STABLE AS $$
        SELECT CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user
                    ELSE pg_catalog.current_setting('role')::name END
    $$""",
    # Superusers and members of the schema owner (the app's migrating role).
    # Bodies name only pg_catalog: PostgreSQL inlines SQL functions into the
    # caller's query and resolves their names as the caller, who has no
    # USAGE on this schema.
    """CREATE FUNCTION analytics_private.is_unrestricted(role_name name) RETURNS boolean
    LANGUAGE sql STABLE AS $$
        SELECT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r
                         WHERE r.rolname = role_name), false)
            OR pg_catalog.pg_has_role(role_name, n.nspowner, 'USAGE')
        FROM pg_catalog.pg_namespace n WHERE n.nspname = 'analytics'
    $$""",
    # The NOT IN / IN subqueries are hashed once per query, not run per row.
    """CREATE VIEW analytics_private.visible_document AS
    SELECT d.id FROM documents_document d
    WHERE (SELECT analytics_private.is_unrestricted(analytics_private.invoking_role()))
       OR d.id NOT IN (SELECT g.document_id FROM documents_document_groups g)
       OR d.id IN (
            SELECT g.document_id
            FROM documents_document_groups g
            JOIN analytics_private.role_group_grants r ON r.group_id = g.group_id
            WHERE r.role_name = analytics_private.invoking_role())""",
    """CREATE FUNCTION analytics_private.grant_analyst(role_name name) RETURNS void
    LANGUAGE plpgsql AS $$
    BEGIN
        IF NOT has_database_privilege(role_name, current_database(), 'CONNECT') THEN
            EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), role_name);
        END IF;
        EXECUTE format('REVOKE ALL ON SCHEMA public FROM %I', role_name);
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I', role_name);
        EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', role_name);
        EXECUTE format('REVOKE ALL ON SCHEMA analytics_private FROM %I', role_name);
        EXECUTE format('GRANT USAGE ON SCHEMA analytics TO %I', role_name);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO %I', role_name);
        EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA analytics TO %I', role_name);
        EXECUTE format('GRANT EXECUTE ON FUNCTION analytics_private.invoking_role(),'
                       ' analytics_private.is_unrestricted(name) TO %I', role_name);
    END
    $$""",
    # Migrations that add views or functions end by calling this.
    """CREATE FUNCTION analytics_private.grant_analysts() RETURNS void
    LANGUAGE plpgsql AS $$
    DECLARE
        r record;
    BEGIN
        FOR r IN SELECT a.role_name FROM analytics_private.analyst_roles a
                 JOIN pg_catalog.pg_roles p ON p.rolname = a.role_name LOOP
            PERFORM analytics_private.grant_analyst(r.role_name);
        END LOOP;
    END
    $$""",
    """REVOKE ALL ON FUNCTION analytics_private.invoking_role(),
        analytics_private.is_unrestricted(name), analytics_private.grant_analyst(name),
        analytics_private.grant_analysts() FROM PUBLIC""",
]

DOCUMENTS = [
    """CREATE VIEW analytics.documents WITH (security_barrier) AS
    SELECT d.id, d.title::text AS title, d.source_type::text AS source_type,
           nullif(d.language, '')::text AS language, d.tags::text[] AS tags, d.owner_id,
           d.status::text AS status,
           EXISTS (SELECT 1 FROM documents_document_groups g WHERE g.document_id = d.id)
               AS is_restricted,
           length(d.text) AS text_length, d.term_count, d.text,
           nullif(d.original_filename, '')::text AS original_filename,
           nullif(d.source_path, '')::text AS source_path,
           d.created_at, d.updated_at
    FROM documents_document d
    WHERE d.id IN (SELECT v.id FROM analytics_private.visible_document v)""",
    """CREATE VIEW analytics.chunks WITH (security_barrier) AS
    SELECT c.id, c.document_id, c.position, c.text, c.start_offset, c.end_offset,
           c.token_count, nullif(c.embedding_model, '')::text AS embedding_model,
           vector_dims(c.embedding) AS embedding_dimensions, c.embedding, c.created_at
    FROM documents_chunk c
    WHERE c.document_id IN (SELECT v.id FROM analytics_private.visible_document v)""",
    # is_current is Document.is_indexed; is_stale is DocumentQuerySet.stale()
    # for the model the app embeds with now (analytics.search_settings).
    """CREATE VIEW analytics.embedding_status WITH (security_barrier) AS
    SELECT d.id AS document_id, d.status::text AS status,
           nullif(d.embedding_model, '')::text AS embedding_model,
           vector_dims(d.embedding) AS embedding_dimensions, d.embedded_at,
           (d.embedded_hash = d.content_hash AND d.embedding_model <> '') AS is_current,
           (d.status = 'ready' AND (d.embedding_model IS DISTINCT FROM s.embedding_model
                                    OR d.embedded_hash <> d.content_hash)) AS is_stale,
           coalesce(c.chunks, 0) AS chunk_count,
           coalesce(c.embedded_chunks, 0) AS embedded_chunk_count,
           nullif(d.last_error, '') AS last_error
    FROM documents_document d
    LEFT JOIN analytics_private.search_settings s ON true
    LEFT JOIN (
        SELECT document_id, count(*) AS chunks, count(embedding) AS embedded_chunks
        FROM documents_chunk GROUP BY document_id
    ) c ON c.document_id = d.id
    WHERE d.id IN (SELECT v.id FROM analytics_private.visible_document v)""",
    """CREATE VIEW analytics.document_tags WITH (security_barrier) AS
    SELECT d.id AS document_id, t.tag::text AS tag
    FROM documents_document d CROSS JOIN LATERAL unnest(d.tags) AS t(tag)
    WHERE d.id IN (SELECT v.id FROM analytics_private.visible_document v)""",
    """CREATE VIEW analytics.tags AS
    SELECT tag, count(*) AS document_count FROM analytics.document_tags GROUP BY tag""",
    """CREATE VIEW analytics.document_groups WITH (security_barrier) AS
    SELECT g.document_id, g.group_id, ag.name::text AS group_name
    FROM documents_document_groups g JOIN auth_group ag ON ag.id = g.group_id
    WHERE g.document_id IN (SELECT v.id FROM analytics_private.visible_document v)""",
    """CREATE VIEW analytics.search_settings AS
    SELECT embedding_model, embedding_dimensions, semantic_weight_en, semantic_weight_ko,
           semantic_weight_override, fusion, candidates, hnsw_ef_search, updated_at
    FROM analytics_private.search_settings""",
]

# Search logs are shown whole: queries are the analysts' subject. A click
# on a document the role may not see keeps its row without the document id.
SEARCH_LOGS = [
    """CREATE VIEW analytics.search_queries AS
    SELECT q.id, q.created_at, q.user_id, q.query, lower(q.query) AS query_key,
           q.mode::text AS mode, q.source::text AS source, q.filters, q.result_count,
           q.result_count = 0 AS is_zero_result, q.latency_ms,
           (SELECT count(*) FROM search_searchresultclick c WHERE c.search_id = q.id)
               AS click_count
    FROM search_searchquerylog q""",
    """CREATE VIEW analytics.search_clicks WITH (security_barrier) AS
    SELECT c.id, c.created_at, c.search_id, c.user_id,
           CASE WHEN c.document_id IN (SELECT v.id FROM analytics_private.visible_document v)
                THEN c.document_id END AS document_id,
           c.rank, q.query, lower(q.query) AS query_key, q.mode::text AS mode
    FROM search_searchresultclick c LEFT JOIN search_searchquerylog q ON q.id = c.search_id""",
    """CREATE VIEW analytics.daily_queries AS
    SELECT q.created_at::date AS day, q.query_key, count(*) AS searches,
           count(DISTINCT q.user_id) AS users,
           count(*) FILTER (WHERE q.is_zero_result) AS zero_result_searches,
           sum(q.click_count)::bigint AS clicks, avg(q.result_count)::float8 AS mean_result_count
    FROM analytics.search_queries q GROUP BY 1, 2""",
    """CREATE VIEW analytics.top_queries AS
    SELECT q.query_key, count(*) AS searches, count(DISTINCT q.user_id) AS users,
           count(*) FILTER (WHERE q.is_zero_result) AS zero_result_searches,
           sum(q.click_count)::bigint AS clicks,
           (count(*) FILTER (WHERE q.click_count > 0))::float8 / count(*) AS click_through_rate,
           min(q.created_at) AS first_seen, max(q.created_at) AS last_seen
    FROM analytics.search_queries q GROUP BY q.query_key""",
    """CREATE VIEW analytics.zero_result_queries AS
    SELECT q.query_key, count(*) AS searches, count(DISTINCT q.user_id) AS users,
           min(q.created_at) AS first_seen, max(q.created_at) AS last_seen
    FROM analytics.search_queries q WHERE q.is_zero_result GROUP BY q.query_key""",
    """CREATE VIEW analytics.search_daily AS
    SELECT q.created_at::date AS day, q.mode, count(*) AS searches,
           count(DISTINCT q.user_id) AS users,
           count(*) FILTER (WHERE q.is_zero_result) AS zero_result_searches,
           sum(q.click_count)::bigint AS clicks,
           avg(q.latency_ms)::float8 AS mean_latency_ms,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY q.latency_ms) AS p50_latency_ms,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY q.latency_ms) AS p90_latency_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY q.latency_ms) AS p95_latency_ms,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY q.latency_ms) AS p99_latency_ms,
           max(q.latency_ms) AS max_latency_ms
    FROM analytics.search_queries q GROUP BY 1, 2""",
]


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("documents", "0002_hnsw_indexes"),
        ("search", "0002_clustering"),
    ]

    operations = [
        migrations.RunSQL(
            PRIVATE + DOCUMENTS + SEARCH_LOGS + ["SELECT analytics_private.grant_analysts()"],
            ["DROP SCHEMA analytics CASCADE", "DROP SCHEMA analytics_private CASCADE"],
        ),
        # The search settings the functions read are recorded after every
        # migrate, with the functions (search.analytics.install): reading
        # the app's models here would see a schema later migrations change.
    ]
