"""The analytics views: the ORM's counts, restricted documents hidden from analysts."""

from __future__ import annotations

from io import StringIO
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count

from documents.models import Document
from search.clustering.models import Cluster, ClusterMembership
from search.models import SearchQueryLog
from tests.search.analytics.helpers import as_role, rows

if TYPE_CHECKING:
    from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db


class TestViews:
    def test_documents_match_the_orm(
        self, corpus: dict[str, Document], user: User, analyst: str
    ) -> None:
        """Document counts by status are the ORM's, for the app and for an analyst."""

        def by_status(queryset: Any) -> dict[str, int]:
            return dict(queryset.values_list("status").annotate(n=Count("id")))

        query = "SELECT status, count(*) FROM analytics.documents GROUP BY status"
        everything, visible = (
            by_status(Document.objects.all()),
            by_status(Document.objects.visible_to(user)),
        )
        with connection.cursor() as cursor:
            assert dict(rows(cursor, query)) == everything
        with as_role(analyst) as cursor:
            assert dict(rows(cursor, query)) == visible
        assert everything == {"ready": 9, "pending": 1}
        assert visible == {"ready": 7, "pending": 1}

    def test_embedding_status_matches_the_documents(self, corpus: dict[str, Document]) -> None:
        """is_current, chunk counts and models are what the documents say."""
        with connection.cursor() as cursor:
            status = {
                r[0]: r[1:]
                for r in rows(
                    cursor,
                    "SELECT document_id, is_current, is_stale, chunk_count, embedding_model"
                    " FROM analytics.embedding_status",
                )
            }
        for document in corpus.values():
            document.refresh_from_db()
            assert status[document.pk] == (
                document.is_indexed,
                False,
                document.chunks.count(),
                document.embedding_model or None,
            )

    def test_restricted_documents_hidden_unless_granted(
        self, corpus: dict[str, Document], analyst: str
    ) -> None:
        """A document with groups is hidden from an analyst until a group is granted."""
        secret = corpus["secret"].pk
        queries = [
            "SELECT id FROM analytics.documents",
            "SELECT document_id FROM analytics.chunks",
            "SELECT document_id FROM analytics.embedding_status",
            "SELECT document_id FROM analytics.document_tags",
            "SELECT document_id FROM analytics.document_groups",
            "SELECT document_id FROM analytics.keyword_search('vector search salaries')",
        ]

        def seen() -> list[bool]:
            with as_role(analyst) as cursor:
                return [secret in {r[0] for r in rows(cursor, q)} for q in queries]

        assert seen() == [False] * len(queries)
        call_command("create_analyst_role", analyst, "--grant-group", "HR", stdout=StringIO())
        assert seen() == [True] * len(queries)
        call_command("create_analyst_role", analyst, "--revoke-group", "HR", stdout=StringIO())
        assert seen() == [False] * len(queries)

    def test_app_role_sees_everything(self, corpus: dict[str, Document]) -> None:
        """The app's own role is unrestricted."""
        with connection.cursor() as cursor:
            count = rows(cursor, "SELECT count(*) FROM analytics.documents")[0][0]
        assert count == Document.objects.count()

    def test_query_log_views(
        self, search_logs: list[SearchQueryLog], analyst: str, corpus: dict[str, Document]
    ) -> None:
        """Top queries, zero-result queries and latency percentiles per mode and day."""
        with as_role(analyst) as cursor:
            top = {
                r[0]: r[1:]
                for r in rows(
                    cursor,
                    "SELECT query_key, searches, zero_result_searches, clicks"
                    " FROM analytics.top_queries",
                )
            }
            zero = rows(cursor, "SELECT query_key, searches FROM analytics.zero_result_queries")
            clicks = rows(
                cursor, "SELECT rank, document_id FROM analytics.search_clicks ORDER BY rank"
            )
            latency = rows(
                cursor,
                "SELECT p50_latency_ms, p90_latency_ms, searches"
                " FROM analytics.search_daily WHERE mode = 'hybrid'"
                " AND day = (now() - interval '3 days')::date",
            )
            overall = rows(
                cursor,
                "SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY"
                " latency_ms) FROM analytics.search_queries WHERE mode = 'hybrid'",
            )
        assert top["vector search"] == (3, 0, 2)
        assert top["quantum gravity"] == (2, 2, 0)
        assert zero == [("quantum gravity", 2)]
        # The click on the restricted document keeps its row, not the document.
        assert clicks == [(1, corpus["vectors"].pk), (2, None)]
        assert latency == [(40.0, 40.0, 1)]
        hybrid = [log.latency_ms for log in search_logs if log.mode == "hybrid"]
        assert overall[0][0] == pytest.approx(float(np.percentile(hybrid, 90)))

    def test_clusters_hide_what_members_reveal(
        self, clustering: list[Cluster], analyst: str
    ) -> None:
        """Labels of clusters with hidden members are withheld; sizes are not."""
        query = (
            "SELECT c.id, c.size, c.label, c.has_hidden_members FROM analytics.clusters c"
            " ORDER BY c.id"
        )
        members = "SELECT count(*) FROM analytics.cluster_memberships"
        with as_role(analyst) as cursor:
            seen = rows(cursor, query)
            member_count = rows(cursor, members)[0][0]
        assert [(s, label, hidden) for _, s, label, hidden in seen] == [
            (3, None, True),
            (2, "label 1", False),
            (2, None, True),
            (3, "label 1", False),
        ]
        assert member_count == ClusterMembership.objects.count() - 2
        with connection.cursor() as cursor:
            assert all(r[2] is not None for r in rows(cursor, query))
