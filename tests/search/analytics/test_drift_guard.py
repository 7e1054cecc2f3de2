"""The installed analytics functions are the app's SQL, settings and analysis."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from django.db import connection

from documents.analysis import detect_language
from search import analytics
from search.analytics.rendering import _bind
from search.ranking.backends.hybrid import semantic_weight_for
from tests.search.analytics.helpers import refused, rows, vector

if TYPE_CHECKING:
    from documents.embeddings import FakeProvider

pytestmark = pytest.mark.django_db

REINSTALL = "`python manage.py migrate` installs them again (search.analytics.install)"


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
