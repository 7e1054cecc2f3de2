"""The analysts' SQL surface: roles, views, functions and their documentation."""

from __future__ import annotations

import os
import re
import secrets
from contextlib import contextmanager
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.db.models import Count
from django.utils import timezone

from documents.analysis import detect_language
from documents.models import Document
from search import analytics
from search.analytics.rendering import _bind
from search.clustering.models import Cluster, ClusteringRun, ClusterMembership
from search.models import SearchQueryLog, SearchResultClick
from search.ranking.backends import HybridBackend, KeywordBackend, SemanticBackend
from search.ranking.backends.hybrid import semantic_weight_for
from search.ranking.backends.semantic import embed_query
from search.ranking.query import parse_query
from search.related import related_documents
from tests.factories import make_document

if TYPE_CHECKING:
    from collections.abc import Iterator

    from django.contrib.auth.models import Group, User

    from documents.embeddings import FakeProvider

pytestmark = pytest.mark.django_db

DOCS: Path = Path(settings.BASE_DIR) / "docs" / "analysts.md"
REINSTALL = "`python manage.py migrate` installs them again (search.analytics.install)"

PUBLIC_DOCUMENTS = {
    "vectors": (
        "Vector databases",
        "Vector databases store embeddings and answer nearest neighbour queries with HNSW indexes.",
        ["tech"],
    ),
    "engines": (
        "Search engines",
        "Search engines rank documents for a query with BM25 "
        "and with vector search over embeddings.",
        ["tech"],
    ),
    "pasta": (
        "Cooking pasta",
        "Boil salted water and cook the pasta until it is tender.",
        ["food"],
    ),
    "tomatoes": ("Growing tomatoes", "Tomato plants need sun, water and a stake.", ["garden"]),
    "임베딩": ("임베딩 검색", "임베딩은 검색 엔진에서 의미 검색에 사용됩니다.", ["tech"]),
    "벡터": (
        "벡터 데이터베이스",
        "벡터 데이터베이스는 임베딩을 저장하고 가까운 이웃을 찾습니다.",
        ["tech"],
    ),
    "요리": ("파스타 요리", "소금물에 파스타를 삶고 소스를 만듭니다.", ["food"]),
}
LANGUAGE_SAMPLES = [
    "",
    "1234 !",
    "vector search",
    "임베딩 검색",
    "임베딩 search engine",
    "임베딩 검색 엔진 search",
    "ㅋㅋ 좋아요",
    "Café 검색",
    "\uff21\uff22\uff23 한국어",
    "한국어와 English가 섞인 질의",
    "Ελληνικά и русский",
]
QUERIES = [
    "vector search",
    "pasta water",
    "search engines rank documents",
    "임베딩 검색",
    "벡터 데이터베이스 이웃",
    "파스타 요리",
]


@pytest.fixture(scope="module")
def analyst(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """A committed analyst role without groups, so it can also log in.

    Roles belong to the whole server and outlive the tests' transactions:
    the name is unique to this run, and the role is dropped afterwards.
    """
    name = f"test_analyst_{os.getpid()}_{secrets.token_hex(3)}"
    with django_db_blocker.unblock():
        call_command("create_analyst_role", name, "--statement-timeout", "200ms", stdout=StringIO())
    try:
        yield name
    finally:
        with django_db_blocker.unblock():
            call_command("create_analyst_role", name, "--drop", stdout=StringIO())


@contextmanager
def as_role(name: str) -> Iterator[Any]:
    """A cursor in the test's transaction (so it sees the test's rows) as ``name``."""
    with connection.cursor() as cursor:
        cursor.execute(f'SET ROLE "{name}"')
        try:
            yield cursor
        finally:
            cursor.execute("RESET ROLE")


@contextmanager
def login(name: str) -> Iterator[psycopg.Connection[Any]]:
    """A session of its own, logged in as ``name`` (trust on the local socket)."""
    with psycopg.connect(analytics.analyst_dsn(name), autocommit=True) as session:
        yield session


def refused(cursor: Any, statement: str, params: list[Any] | None = None) -> psycopg.Error:
    """Run a statement that must fail; return PostgreSQL's error."""
    with pytest.raises(DatabaseError) as info, transaction.atomic():
        cursor.execute(statement, params)
    assert isinstance(info.value.__cause__, psycopg.Error)
    return info.value.__cause__


def rows(cursor: Any, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    cursor.execute(statement, params)
    return list(cursor.fetchall())


def vector(text: str) -> str:
    """The query vector the app computes for ``text``, as a pgvector literal."""
    return embed_query(parse_query(text).semantic_text)[0].vector.to_text()


@pytest.fixture
def corpus(hr_group: Group) -> dict[str, Document]:
    documents = {
        key: make_document(title, text, tags=tags)
        for key, (title, text, tags) in PUBLIC_DOCUMENTS.items()
    }
    documents["secret"] = make_document(
        "Vector search salaries",
        "Confidential: salaries of the vector search team.",
        tags=["hr"],
        groups=[hr_group],
    )
    documents["비밀"] = make_document(
        "임베딩 팀 연봉", "기밀: 임베딩 검색 팀의 연봉.", groups=[hr_group]
    )
    documents["draft"] = make_document("Draft notes", "Not indexed yet.", index=False)
    return documents


@pytest.fixture
def search_logs(corpus: dict[str, Document], user: User) -> list[SearchQueryLog]:
    now = timezone.now()
    specs = [
        ("vector search", "hybrid", 3, 12.0, 0),
        ("vector search", "hybrid", 3, 30.0, 1),
        ("Vector search", "keyword", 2, 8.0, 2),
        ("quantum gravity", "keyword", 0, 5.0, 1),
        ("quantum gravity", "hybrid", 0, 40.0, 3),
        ("임베딩 검색", "semantic", 4, 25.0, 0),
    ]
    logs = []
    for query, mode, count, latency, days_ago in specs:
        log = SearchQueryLog.objects.create(
            user=user,
            query=query,
            mode=mode,
            result_count=count,
            latency_ms=latency,
            created_at=now - timedelta(days=days_ago),
        )
        logs.append(log)
    SearchResultClick.objects.create(search=logs[0], user=user, document=corpus["vectors"], rank=1)
    SearchResultClick.objects.create(search=logs[1], user=user, document=corpus["secret"], rank=2)
    return logs


@pytest.fixture
def clustering(corpus: dict[str, Document]) -> list[Cluster]:
    clusters = []
    for days_ago in (2, 0):
        run = ClusteringRun.objects.create(
            status=ClusteringRun.Status.DONE,
            document_count=4,
            algorithm="kmeans",
            k=2,
            created_at=timezone.now() - timedelta(days=days_ago),
        )
        members = {
            0: [corpus["vectors"], corpus["engines"], corpus["secret"]],
            1: [corpus["pasta"], corpus["요리"]],
        }
        if days_ago == 0:
            members = {
                0: [corpus["vectors"], corpus["secret"]],
                1: [corpus["pasta"], corpus["요리"], corpus["engines"]],
            }
        for number, documents in members.items():
            cluster = Cluster.objects.create(
                run=run,
                number=number,
                label=f"label {number}",
                terms=["t"],
                size=len(documents),
                cohesion=0.5,
                representatives=[d.pk for d in documents],
            )
            clusters.append(cluster)
            for document in documents:
                ClusterMembership.objects.create(
                    run=run, cluster=cluster, document=document, distance_to_centroid=0.1
                )
    return clusters


class TestDriftGuard:
    def test_installed_functions_are_the_app_sql(self) -> None:
        """The installed functions are what the renderer makes of the app's SQL now."""
        expected = {
            (f.name, f.identity.split("(", 1)[1][:-1], f.body)
            for f in analytics.analytics_functions()
        }
        with connection.cursor() as cursor:
            installed = set(
                rows(
                    cursor,
                    "SELECT p.proname, pg_get_function_identity_arguments(p.oid), p.prosrc"
                    " FROM pg_proc p WHERE p.pronamespace = 'analytics'::regnamespace",
                )
            )
        stale = sorted({f"{name}({arguments})" for name, arguments, _ in expected ^ installed})
        assert not stale, (
            f"The analytics SQL functions {stale} differ from what search/analytics/ "
            "renders from the app's ranking SQL (search/ranking/backends/sql.py, "
            f"search/related/selectors.py): {REINSTALL}"
        )

    def test_installed_result_types_are_rendered(self) -> None:
        """The functions' result types have the rendered columns."""
        with connection.cursor() as cursor:
            for name, columns in analytics.RESULT_TYPES.items():
                installed = rows(
                    cursor,
                    "SELECT a.attname, format_type(a.atttypid, a.atttypmod)"
                    " FROM pg_attribute a JOIN pg_type t ON t.typrelid = a.attrelid"
                    " WHERE t.oid = %s::regtype AND a.attnum > 0 ORDER BY a.attnum",
                    [f"analytics.{name}"],
                )
                expected = [tuple(c.split(" ", 1)) for c in columns.split(", ")]
                assert installed == expected, f"analytics.{name}: {REINSTALL}"

    @pytest.mark.parametrize("text", LANGUAGE_SAMPLES)
    def test_detect_language_is_the_apps(self, text: str) -> None:
        """SQL tells the language of a query exactly as documents.analysis."""
        with connection.cursor() as cursor:
            assert rows(cursor, "SELECT analytics.detect_language(%s)", [text])[0][0] == (
                detect_language(text)
            )

    @pytest.mark.parametrize("text", LANGUAGE_SAMPLES)
    @pytest.mark.parametrize("override", [None, 0.25])
    def test_semantic_weight_is_the_apps(
        self, settings: Any, fake_embedder: FakeProvider, text: str, override: float | None
    ) -> None:
        """SQL chooses the hybrid weight of a query as the app does."""
        settings.SEARCH_SEMANTIC_WEIGHT = override
        fake_embedder.semantic_weights = {"en": 0.6, "ko": 0.1}
        analytics.sync_search_settings()
        with connection.cursor() as cursor:
            weight = rows(cursor, "SELECT analytics.semantic_weight(%s)", [text])[0][0]
        assert weight == semantic_weight_for(text)

    def test_recorded_settings_are_current(self) -> None:
        """The settings the functions read are the app's (migration or command wrote them)."""
        assert analytics.recorded_search_settings() == analytics.current_search_settings()

    def test_settings_missing_is_explained(self) -> None:
        """Without recorded settings the functions say which command to run."""
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM analytics_private.search_settings")
            error = refused(
                cursor, "SELECT * FROM analytics.semantic_search(%s::vector, 3)", [vector("vector")]
            )
        assert "create_analyst_role --sync-settings" in str(error.diag.message_hint)

    def test_bind_rejects_unknown_parameters(self) -> None:
        """A new kind of parameter in the app's SQL stops rendering loudly."""
        with pytest.raises(TypeError):
            _bind(("SELECT %s", [object()]))
        with pytest.raises(ValueError, match="fewer placeholders"):
            _bind(("SELECT 1", [1]))


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


class TestAnalystPrivileges:
    @pytest.mark.parametrize(
        "table",
        [
            "auth_user",
            "django_session",
            "documents_document",
            "documents_chunk",
            "search_searchquerylog",
            "analytics_private.role_group_grants",
            "analytics_private.search_settings",
            "analytics_private.visible_document",
        ],
    )
    def test_cannot_read_app_tables(self, analyst: str, table: str) -> None:
        """The app's tables (password hashes, sessions) and internals are unreadable."""
        with as_role(analyst) as cursor:
            error = refused(cursor, f"SELECT * FROM {table} LIMIT 1")
        assert isinstance(error, psycopg.errors.InsufficientPrivilege)

    @pytest.mark.parametrize(
        "statement",
        [
            "INSERT INTO analytics.chunks (document_id) VALUES (1)",
            "DELETE FROM analytics.documents",
            "UPDATE analytics.search_queries SET query = 'x'",
            "DELETE FROM analytics.chunks",
            "INSERT INTO documents_document (title) VALUES ('x')",
            "CREATE TABLE public.analyst_table (id int)",
            "CREATE TABLE analytics.analyst_table (id int)",
            "CREATE VIEW analytics.analyst_view AS SELECT 1",
            "CREATE FUNCTION analytics.analyst_f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE SCHEMA analyst_schema",
            "SELECT pg_read_file('postgresql.conf')",
            "SELECT analytics_private.grant_analysts()",
            "SELECT analytics_private.grant_analyst('postgres')",
            "COPY (SELECT 1) TO '/tmp/analyst-copy'",
        ],
    )
    def test_cannot_write_create_or_escalate(self, analyst: str, statement: str) -> None:
        """No writes, no new objects, no internal functions, no other roles."""
        with as_role(analyst) as cursor:
            error = refused(cursor, statement)
        assert isinstance(error, psycopg.errors.InsufficientPrivilege)

    def test_reads_every_view_and_runs_the_functions(
        self, corpus: dict[str, Document], analyst: str
    ) -> None:
        """Everything in the analytics schema is open to the analyst."""
        with connection.cursor() as cursor:
            views = [
                r[0]
                for r in rows(
                    cursor,
                    "SELECT table_name FROM information_schema.views"
                    " WHERE table_schema = 'analytics'",
                )
            ]
        with as_role(analyst) as cursor:
            for view in views:
                cursor.execute(f"SELECT * FROM analytics.{view} LIMIT 1")
            cursor.execute("SELECT * FROM analytics.related_documents(%s)", [corpus["vectors"].pk])
            assert len(cursor.fetchall()) > 0
        assert len(views) >= 15

    def test_session_defaults(self, analyst: str) -> None:
        """A login gets read-only transactions, the timeout, the schema and the time zone."""
        names = ("default_transaction_read_only", "statement_timeout", "search_path", "TimeZone")
        with login(analyst) as session:
            show = {name: session.execute(f"SHOW {name}").fetchall()[0][0] for name in names}
            # search_path: the views answer to their short names.
            assert session.execute("SELECT count(*) FROM documents").fetchall()[0][0] >= 0
        assert show == {
            "default_transaction_read_only": "on",
            "statement_timeout": "200ms",
            "search_path": "analytics, public",
            "TimeZone": settings.TIME_ZONE,
        }

    def test_statement_timeout_stops_long_queries(self, analyst: str) -> None:
        """A careless query is cancelled by the role's statement timeout."""
        with login(analyst) as session, pytest.raises(psycopg.errors.QueryCanceled):
            session.execute("SELECT pg_sleep(5)")

    def test_read_only_by_default(self, analyst: str) -> None:
        """Even temporary tables need an explicit read-write transaction."""
        with login(analyst) as session, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            session.execute("CREATE TEMP TABLE scratch (id int)")

    @pytest.mark.parametrize(
        "statement", ["SET ROLE postgres", "SELECT set_config('role', 'postgres', false)"]
    )
    def test_cannot_become_another_role(self, analyst: str, statement: str) -> None:
        """A logged-in analyst cannot act as the app's role, nor claim to."""
        with login(analyst) as session, pytest.raises(psycopg.errors.InsufficientPrivilege):
            session.execute(statement)

    def test_update_keeps_what_it_is_not_told(self, analyst: str, hr_group: Group) -> None:
        """Granting a group leaves the role's statement timeout as it was."""
        call_command("create_analyst_role", analyst, "--grant-group", "HR", stdout=StringIO())
        with connection.cursor() as cursor:
            config = rows(cursor, "SELECT rolconfig FROM pg_roles WHERE rolname = %s", [analyst])[
                0
            ][0]
        assert "statement_timeout=200ms" in config


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


class TestCommands:
    def test_analyze_query_prints_the_apps_terms(self) -> None:
        """The terms come out as a SQL array of the app's analysis."""
        out = StringIO()
        call_command("analyze_query", "임베딩은 검색 엔진을", stdout=out)
        assert out.getvalue().strip() == "ARRAY['임베딩','검색','엔진']::text[]"
        with connection.cursor() as cursor:
            assert rows(cursor, f"SELECT {out.getvalue()}")[0][0] == ["임베딩", "검색", "엔진"]

    def test_analyze_query_warns_about_operators(self) -> None:
        """Phrases and exclusions are not applied by SQL, and the command says so."""
        out, err = StringIO(), StringIO()
        call_command("analyze_query", 'vector "search engine" -pasta', stdout=out, stderr=err)
        assert "not applied" in err.getvalue()
        assert "pasta" not in out.getvalue()

    def test_analyze_query_semantic_weight(self) -> None:
        out = StringIO()
        call_command("analyze_query", "임베딩 search", "--semantic-weight", stdout=out)
        assert float(out.getvalue()) == semantic_weight_for("임베딩 search")

    def test_embed_query_prints_the_apps_vector(self) -> None:
        """The literal is the app's query vector and casts to the model's size."""
        out, err = StringIO(), StringIO()
        call_command("embed_query", "vector search", stdout=out, stderr=err)
        assert out.getvalue().strip() == vector("vector search")
        assert err.getvalue() == ""
        with connection.cursor() as cursor:
            assert rows(cursor, "SELECT vector_dims(%s::vector)", [out.getvalue().strip()]) == [
                (384,)
            ]

    def test_create_is_idempotent_and_sets_defaults(self) -> None:
        """A new role is read-only, times out after 30s, and can be created twice."""
        name = f"test_analyst_new_{secrets.token_hex(3)}"
        out = StringIO()
        call_command("create_analyst_role", name, "--password", "s3cret", stdout=out)
        call_command("create_analyst_role", name, "--password", "s3cret", stdout=out)
        assert out.getvalue().splitlines() == [
            f"Created analyst role {name}.",
            f"Updated analyst role {name}.",
        ]
        with connection.cursor() as cursor:
            config, password, login_ = rows(
                cursor,
                "SELECT r.rolconfig, a.rolpassword, a.rolcanlogin FROM pg_roles r"
                " JOIN pg_authid a ON a.oid = r.oid WHERE r.rolname = %s",
                [name],
            )[0]
        assert {"statement_timeout=30s", "default_transaction_read_only=on"} <= set(config)
        assert password.startswith("SCRAM-SHA-256$")
        assert login_ is True

    def test_print_dsn(self, analyst: str) -> None:
        """--print-dsn prints only a URI that logs in as the role."""
        out, err = StringIO(), StringIO()
        call_command(
            "create_analyst_role",
            analyst,
            "--print-dsn",
            "--statement-timeout",
            "200ms",
            stdout=out,
            stderr=err,
        )
        dsn = out.getvalue().strip()
        assert dsn.startswith(f"postgresql://{analyst}@")
        with psycopg.connect(dsn) as session:
            assert session.execute("SELECT current_user").fetchone() == (analyst,)

    def test_dsn_for_a_server_over_tcp(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A production DSN names host, port and TLS mode, never a password."""
        monkeypatch.setitem(connection.settings_dict, "HOST", "db.example.com")
        monkeypatch.setitem(connection.settings_dict, "PORT", 5432)
        monkeypatch.setitem(connection.settings_dict, "OPTIONS", {"sslmode": "verify-full"})
        database = connection.settings_dict["NAME"]
        assert analytics.analyst_dsn("alice") == (
            f"postgresql://alice@db.example.com:5432/{database}?sslmode=verify-full"
        )

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["postgres"], "was not created by create_analyst_role"),
            (["Bad-Name"], "invalid role name"),
            ([], "give a role NAME"),
            (["valid_name", "--grant-group", "No such group"], "no group named"),
            (["valid_name", "--password-from-env", "ANALYTICS_TEST_UNSET"], "unset or empty"),
            (["valid_name", "--statement-timeout", "soon"], "PostgreSQL refused"),
            (["never_created_role", "--drop"], "is not an analyst role"),
        ],
    )
    def test_refusals(self, args: list[str], message: str) -> None:
        """Foreign roles, bad names, unknown groups and bad values are refused clearly."""
        with pytest.raises(CommandError, match=message):
            call_command("create_analyst_role", *args, stdout=StringIO())

    def test_password_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        name = f"test_analyst_env_{secrets.token_hex(3)}"
        monkeypatch.setenv("ANALYTICS_TEST_PASSWORD", "from-env")
        call_command(
            "create_analyst_role",
            name,
            "--password-from-env",
            "ANALYTICS_TEST_PASSWORD",
            stdout=StringIO(),
        )
        with connection.cursor() as cursor:
            assert rows(
                cursor,
                "SELECT rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid WHERE rolname = %s",
                [name],
            ) == [(True,)]


# --- The documentation --------------------------------------------------------

_VIEW_HEADING = re.compile(r"^### analytics\.(\w+)$", re.MULTILINE)
_ROW = re.compile(r"^\| (\w+) \| ([^|]+?) \| .+\|$", re.MULTILINE)
_SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```", re.MULTILINE | re.DOTALL)
_VARIABLE = re.compile(r"(?<![:\w]):(?:'(\w+)'|(\w+))")


def documented_views() -> dict[str, list[tuple[str, str]]]:
    text = DOCS.read_text(encoding="utf-8")
    sections = _VIEW_HEADING.split(text)[1:]
    return {
        name: [(m.group(1), m.group(2)) for m in _ROW.finditer(body) if m.group(1) != "column"]
        for name, body in zip(sections[::2], sections[1::2], strict=True)
    }


def examples(variables: dict[str, str]) -> list[str]:
    """Every ```sql block of the documentation, psql variables filled in."""

    def fill(match: re.Match[str]) -> str:
        quoted, plain = match.group(1), match.group(2)
        value = variables[quoted or plain]
        return "'" + value.replace("'", "''") + "'" if quoted else value

    return [
        _VARIABLE.sub(fill, block) for block in _SQL_BLOCK.findall(DOCS.read_text(encoding="utf-8"))
    ]


class TestDocumentation:
    def test_every_view_is_documented_as_it_is(self) -> None:
        """docs/analysts.md lists each view's columns with their types, in order."""
        with connection.cursor() as cursor:
            actual: dict[str, list[tuple[str, str]]] = {}
            for view, column, type_ in rows(
                cursor,
                "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)"
                " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
                " WHERE c.relnamespace = 'analytics'::regnamespace AND c.relkind = 'v'"
                " AND a.attnum > 0 ORDER BY c.relname, a.attnum",
            ):
                actual.setdefault(view, []).append((column, type_))
        assert documented_views() == actual

    def test_every_function_is_documented(self) -> None:
        text = DOCS.read_text(encoding="utf-8")
        for function in analytics.analytics_functions():
            assert f"`{function.name}(" in text, function.name

    def test_examples_run_as_an_analyst(
        self,
        corpus: dict[str, Document],
        search_logs: list[SearchQueryLog],
        clustering: list[Cluster],
        analyst: str,
    ) -> None:
        """Each example query of the documentation runs, as an analyst, on real data."""
        terms = analytics.terms_array_literal(parse_query("vector search").terms)
        blocks = examples(
            {"q": vector("vector search"), "terms": terms, "doc_id": str(corpus["vectors"].pk)}
        )
        assert len(blocks) >= 10
        nonempty = 0
        with as_role(analyst) as cursor:
            for block in blocks:
                try:
                    with transaction.atomic():
                        cursor.execute(block)
                except DatabaseError as exc:
                    pytest.fail(f"docs/analysts.md example failed: {exc}\n{block}")
                nonempty += bool(cursor.fetchall())
        assert nonempty >= len(blocks) - 3
