"""Analytics views over the clustering report's runs, clusters and members.

Runs are shown whole. A membership row is shown only for a document the
role may see. A cluster keeps its size and position for every role, but
its label, terms and representatives only when the role may see every
member: they are computed from the members' text and ids.
"""

from django.db import migrations

VIEWS = [
    """CREATE VIEW analytics.clustering_runs AS
    SELECT r.id, r.scope::text AS scope, nullif(r.tag, '')::text AS tag, r.date_from,
           r.date_to, r.algorithm::text AS algorithm, r.k, r.k_min, r.k_max,
           r.min_cluster_size, nullif(r.embedding_model, '')::text AS embedding_model,
           r.status::text AS status, r.progress, r.document_count, r.skipped_count,
           r.silhouette,
           (SELECT count(*) FROM search_cluster c WHERE c.run_id = r.id) AS cluster_count,
           nullif(r.error, '') AS error, r.created_by_id, r.created_at, r.finished_at
    FROM search_clusteringrun r""",
    """CREATE VIEW analytics.clusters WITH (security_barrier) AS
    SELECT c.id, c.run_id, c.number, c.size, c.cohesion, c.x, c.y, h.hidden > 0 AS has_hidden_members,
           CASE WHEN h.hidden = 0 THEN c.label::text END AS label,
           CASE WHEN h.hidden = 0 THEN c.terms END AS terms,
           CASE WHEN h.hidden = 0 THEN c.representatives END AS representatives,
           r.created_at AS run_created_at
    FROM search_cluster c
    JOIN search_clusteringrun r ON r.id = c.run_id
    CROSS JOIN LATERAL (
        SELECT count(*) AS hidden FROM search_clustermembership m
        WHERE m.cluster_id = c.id
          AND m.document_id NOT IN (SELECT v.id FROM analytics_private.visible_document v)
    ) h""",
    """CREATE VIEW analytics.cluster_memberships WITH (security_barrier) AS
    SELECT m.run_id, m.cluster_id, c.number AS cluster_number, m.document_id,
           m.distance_to_centroid, m.x, m.y
    FROM search_clustermembership m LEFT JOIN search_cluster c ON c.id = m.cluster_id
    WHERE m.document_id IN (SELECT v.id FROM analytics_private.visible_document v)""",
]


class Migration(migrations.Migration):
    dependencies = [("search", "0003_analytics")]

    operations = [
        migrations.RunSQL(
            VIEWS + ["SELECT analytics_private.grant_analysts()"],
            [
                "DROP VIEW analytics.cluster_memberships",
                "DROP VIEW analytics.clusters",
                "DROP VIEW analytics.clustering_runs",
            ],
        ),
    ]
