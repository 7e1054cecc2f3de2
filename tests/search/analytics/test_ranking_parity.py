"""The analysts' SQL functions rank as the app's backends, on the same data."""

from __future__ import annotations

from io import StringIO
from typing import TYPE_CHECKING, Any

import pytest
from django.core.management import call_command
from django.db import connection

from documents.models import Document
from search import analytics
from search.ranking.backends import HybridBackend, KeywordBackend, SemanticBackend
from search.ranking.query import parse_query
from search.related import related_documents
from tests.search.analytics.helpers import as_role, rows, vector

if TYPE_CHECKING:
    from django.contrib.auth.models import Group, User

pytestmark = pytest.mark.django_db

QUERIES = [
    "vector search",
    "pasta water",
    "search engines rank documents",
    "임베딩 검색",
    "벡터 데이터베이스 이웃",
    "파스타 요리",
]


def app_queryset(user: User | None) -> Any:
    return Document.objects.all() if user is None else Document.objects.visible_to(user)


class TestRankingParity:
    """The SQL functions rank as the app's backends, on the same data."""

    @pytest.mark.parametrize("text", QUERIES)
    @pytest.mark.parametrize("k", [3, 10])
    def test_keyword(self, corpus: dict[str, Document], text: str, k: int) -> None:
        """keyword_search returns the keyword backend's documents, order and scores."""
        parsed = parse_query(text)
        hits = KeywordBackend().search(parsed, queryset=app_queryset(None), limit=k).hits
        with connection.cursor() as cursor:
            found = rows(
                cursor,
                "SELECT document_id, score, rank FROM analytics.keyword_search(%s::text[], %s)",
                [list(parsed.terms), k],
            )
        assert hits
        assert [r[0] for r in found] == [h.document_id for h in hits]
        assert [r[1] for r in found] == pytest.approx([h.score for h in hits])
        assert [r[2] for r in found] == list(range(1, len(hits) + 1))

    @pytest.mark.parametrize("text", QUERIES)
    @pytest.mark.parametrize("k", [3, 10])
    def test_semantic(self, corpus: dict[str, Document], text: str, k: int) -> None:
        """semantic_search returns the semantic backend's documents and best chunks."""
        parsed = parse_query(text)
        hits = SemanticBackend().search(parsed, queryset=app_queryset(None), limit=k).hits
        with connection.cursor() as cursor:
            found = rows(
                cursor,
                "SELECT document_id, score, chunk_id, chunk_matches"
                " FROM analytics.semantic_search(%s::vector, %s)",
                [vector(text), k],
            )
        assert hits
        assert [r[0] for r in found] == [h.document_id for h in hits]
        assert [r[1] for r in found] == pytest.approx([h.score for h in hits])
        assert [(r[2], r[3]) for r in found] == [(h.chunk_id, h.chunk_matches) for h in hits]

    @pytest.mark.parametrize("text", QUERIES)
    @pytest.mark.parametrize("fusion", ["convex", "rrf"])
    @pytest.mark.parametrize("k", [3, 10])
    def test_hybrid(
        self, settings: Any, corpus: dict[str, Document], text: str, fusion: str, k: int
    ) -> None:
        """hybrid_search fuses the two rankings as the hybrid backend does."""
        settings.SEARCH_FUSION = fusion
        analytics.sync_search_settings()
        self._assert_hybrid(text, k)

    @pytest.mark.parametrize("weight", [0.0, 0.3])
    @pytest.mark.parametrize("text", ["vector search", "임베딩 검색"])
    def test_hybrid_weight_override(
        self, settings: Any, corpus: dict[str, Document], weight: float, text: str
    ) -> None:
        """SEARCH_SEMANTIC_WEIGHT applies in SQL too; 0 means keyword ranking alone."""
        settings.SEARCH_SEMANTIC_WEIGHT = weight
        analytics.sync_search_settings()
        self._assert_hybrid(text, 5)

    def _assert_hybrid(
        self, text: str, k: int, *, user: User | None = None, role: str | None = None
    ) -> None:
        parsed = parse_query(text)
        hits = HybridBackend().search(parsed, queryset=app_queryset(user), limit=k).hits
        statement = (
            "SELECT document_id, score, keyword_rank, semantic_rank, chunk_id"
            " FROM analytics.hybrid_search(%s::text[], %s::vector, %s)"
        )
        params = [list(parsed.terms), vector(text), k]
        if role is None:
            with connection.cursor() as cursor:
                found = rows(cursor, statement, params)
        else:
            with as_role(role) as cursor:
                found = rows(cursor, statement, params)
        assert hits
        assert [r[0] for r in found] == [h.document_id for h in hits]
        assert [r[1] for r in found] == pytest.approx([h.score for h in hits])
        assert [r[2:] for r in found] == [
            (h.keyword_rank, h.semantic_rank, h.chunk_id) for h in hits
        ]

    def test_related(self, corpus: dict[str, Document], admin_user: User) -> None:
        """related_documents ranks a document's neighbours as the related panel."""
        source = corpus["vectors"]
        expected = related_documents(user=admin_user, document=source, k=5)
        with connection.cursor() as cursor:
            found = rows(
                cursor,
                "SELECT document_id, score, possible_duplicate"
                " FROM analytics.related_documents(%s, 5)",
                [source.pk],
            )
        assert expected
        assert [r[0] for r in found] == [r.document_id for r in expected]
        assert [r[1] for r in found] == pytest.approx([r.score for r in expected], abs=1e-6)
        assert [r[2] for r in found] == [r.possible_duplicate for r in expected]

    @pytest.mark.parametrize("text", ["vector search", "임베딩 검색"])
    def test_analyst_ranks_as_a_non_member(
        self, corpus: dict[str, Document], analyst: str, user: User, text: str
    ) -> None:
        """An analyst without groups gets the rankings of a user in no group."""
        parsed = parse_query(text)
        keyword = KeywordBackend().search(parsed, queryset=app_queryset(user), limit=10).hits
        semantic = SemanticBackend().search(parsed, queryset=app_queryset(user), limit=10).hits
        with as_role(analyst) as cursor:
            keyword_ids = rows(
                cursor,
                "SELECT document_id FROM analytics.keyword_search(%s::text[], 10)",
                [list(parsed.terms)],
            )
            semantic_ids = rows(
                cursor,
                "SELECT document_id FROM analytics.semantic_search(%s::vector, 10)",
                [vector(text)],
            )
        assert [r[0] for r in keyword_ids] == [h.document_id for h in keyword]
        assert [r[0] for r in semantic_ids] == [h.document_id for h in semantic]
        self._assert_hybrid(text, 10, user=user, role=analyst)

    def test_granted_analyst_ranks_as_a_member(
        self, corpus: dict[str, Document], analyst: str, user: User, hr_group: Group
    ) -> None:
        """A group granted to an analyst shows its documents, as membership does."""
        user.groups.add(hr_group)
        call_command("create_analyst_role", analyst, "--grant-group", "HR", stdout=StringIO())
        self._assert_hybrid("vector search", 10, user=user, role=analyst)
        with as_role(analyst) as cursor:
            found = rows(
                cursor, "SELECT document_id FROM analytics.keyword_search('vector search salaries')"
            )
        assert corpus["secret"].pk in [r[0] for r in found]

    def test_english_text_overload(self, corpus: dict[str, Document]) -> None:
        """For plain English, SQL's own analysis finds the app's terms and ranking."""
        parsed = parse_query("vector databases ranking queries")
        with connection.cursor() as cursor:
            terms = rows(cursor, "SELECT analytics.english_terms(%s)", [parsed.text])[0][0]
            by_text = rows(
                cursor, "SELECT document_id, score FROM analytics.keyword_search(%s)", [parsed.text]
            )
            by_terms = rows(
                cursor,
                "SELECT document_id, score FROM analytics.keyword_search(%s::text[])",
                [list(parsed.terms)],
            )
        assert terms == list(parsed.terms)
        assert by_text == by_terms

    def test_degenerate_arguments_return_nothing(self, corpus: dict[str, Document]) -> None:
        """No terms, no vector or k < 1 give an empty result, never an error."""
        with connection.cursor() as cursor:
            for statement in (
                "SELECT * FROM analytics.keyword_search(ARRAY[]::text[], 10)",
                "SELECT * FROM analytics.keyword_search('vector', 0)",
                "SELECT * FROM analytics.semantic_search(NULL::vector, 10)",
                "SELECT * FROM analytics.hybrid_search(ARRAY[]::text[], '[1,0]'::vector, 10)",
                "SELECT * FROM analytics.related_documents(-1, 10)",
                "SELECT * FROM analytics.related_documents(1, NULL)",
            ):
                assert rows(cursor, statement) == [], statement
