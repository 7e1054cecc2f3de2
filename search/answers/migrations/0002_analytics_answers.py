"""The analysts' view of answers: ``analytics.answers``.

An answer's text and citations are shown only when the role may see every
cited document: the text comes from the cited passages. The question, the
kind of answer and the latency are shown for all.
"""

from django.db import migrations

VIEWS = [
    """CREATE VIEW analytics.answers WITH (security_barrier) AS
    SELECT a.id, a.created_at, a.user_id, a.question, lower(a.question) AS question_key,
           a.kind::text AS kind, a.source::text AS source, a.latency_ms,
           jsonb_array_length(a.citations) AS citation_count, h.hidden > 0 AS has_hidden_citations,
           CASE WHEN h.hidden = 0 THEN a.answer END AS answer,
           CASE WHEN h.hidden = 0 THEN a.citations END AS citations,
           nullif(a.note, '') AS note
    FROM answers_answerlog a
    CROSS JOIN LATERAL (
        SELECT count(*) AS hidden FROM jsonb_array_elements(a.citations) e
        WHERE (e ->> 'document_id')::bigint
              NOT IN (SELECT v.id FROM analytics_private.visible_document v)
    ) h""",
    """COMMENT ON VIEW analytics.answers IS
    'Every answer given (page and API): question, kind (extractive, generated, none), latency;
     answer and citations only when every cited document is visible to the role.'""",
    "SELECT analytics_private.grant_analysts()",
]


class Migration(migrations.Migration):
    dependencies = [
        ("answers", "0001_initial"),
        ("search", "0009_analytics_installed_functions"),
    ]

    operations = [migrations.RunSQL(VIEWS, ["DROP VIEW analytics.answers"])]
