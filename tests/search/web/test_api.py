"""The JSON API: search results, parameters, the document, and the queries a search costs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from django.test import Client

from documents.selectors import search_model_name
from search.models import SearchQueryLog
from tests.search.web.helpers import (
    api_document_url,
    api_search_url,
    document_url,
    make_budget_documents,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from pytest_django import DjangoAssertNumQueries

    from documents.models import Document

pytestmark = pytest.mark.django_db


class TestApi:
    def test_search_returns_ranked_results(
        self, logged_in: Client, vacation: Document, expenses: Document
    ) -> None:
        """The API returns ranked results with their scores and snippets."""
        response = logged_in.get(api_search_url(), {"q": "vacation", "mode": "hybrid"})
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        data = response.json()
        assert {
            "query",
            "mode",
            "total",
            "page",
            "k",
            "timings_ms",
            "results",
            "suggestions",
            "notes",
        } <= set(data)
        assert data["query"] == "vacation"
        assert data["mode"] == "hybrid"
        assert data["k"] == 10
        assert data["page"] == 1
        assert "total_ms" in data["timings_ms"]
        first = data["results"][0]
        assert first["id"] == vacation.pk
        assert first["rank"] == 1
        assert first["url"].endswith(document_url(vacation))
        assert "<mark>" in first["snippet"]
        assert "<" not in first["snippet_text"]
        assert first["tags"] == ["hr", "policy"]
        assert {
            "score",
            "keyword_rank",
            "keyword_score",
            "semantic_rank",
            "semantic_score",
            "more_matches",
            "source_type",
            "language",
            "updated_at",
            "title",
        } <= set(first)

    def test_k_limits_results(
        self, logged_in: Client, vacation: Document, expenses: Document
    ) -> None:
        """k is the page size."""
        data = logged_in.get(api_search_url(), {"q": "days", "mode": "keyword", "k": "1"}).json()
        assert data["k"] == 1
        assert len(data["results"]) == 1
        assert data["has_next"] is True

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"mode": "bogus"}, "mode"),
            ({"k": "0"}, "k"),
            ({"k": "1000"}, "k"),
            ({"k": "ten"}, "k"),
            ({"page": "-1"}, "page"),
            ({"page": "0"}, "page"),
            ({"date_from": "notadate"}, "date_from"),
            ({"date_from": "2024-05-02", "date_to": "2024-05-01"}, "date_to"),
            ({"sort": "random"}, "sort"),
            ({"owner": "nobody"}, "owner"),
        ],
    )
    def test_bad_parameters_are_400(
        self, logged_in: Client, params: dict[str, str], field: str
    ) -> None:
        """Invalid parameters get a JSON 400 naming the field."""
        response = logged_in.get(api_search_url(), {"q": "vacation", **params})
        assert response.status_code == 400
        data = response.json()
        assert data["error"]
        assert list(data["fields"]) == [field]
        assert SearchQueryLog.objects.exists() is False

    @pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "   "}])
    def test_missing_query_is_400(self, logged_in: Client, params: dict[str, str]) -> None:
        """The API needs a non-blank q."""
        response = logged_in.get(api_search_url(), params)
        assert response.status_code == 400
        assert "q" in response.json()["error"]

    def test_post_is_405(self, user: User) -> None:
        """Only GET is allowed, even for a client that sends no CSRF token."""
        client = Client(enforce_csrf_checks=True)
        client.force_login(user)
        response = client.post(api_search_url(), {"q": "vacation"})
        assert response.status_code == 405
        assert response["Allow"] == "GET, HEAD"
        assert "error" in response.json()
        assert client.delete(api_search_url()).status_code == 405

    def test_document_json(self, logged_in: Client, vacation: Document) -> None:
        """The document API returns the document with its text."""
        data = logged_in.get(api_document_url(vacation)).json()
        assert data["title"] == "Vacation policy"
        assert data["text"] == vacation.text
        assert data["groups"] == []
        assert data["status"] == vacation.status


class TestApiQueryCount:
    """The search API costs a fixed number of queries, however many results it returns.

    The same queries as the search page's (see tests/search/web/test_views.py).
    """

    @pytest.mark.parametrize(("mode", "queries"), [("keyword", 6), ("hybrid", 13)], ids=str)
    def test_doubling_the_results_adds_no_query(
        self,
        logged_in: Client,
        django_assert_max_num_queries: DjangoAssertNumQueries,
        mode: str,
        queries: int,
    ) -> None:
        """15 or 30 results in one response: the same queries."""
        params: dict[str, Any] = {"q": "budget", "mode": mode, "k": 50}
        search_model_name()  # Cached per process: the first search looks it up.
        counts = []
        for start in (0, 15):
            make_budget_documents(15, start=start)
            with django_assert_max_num_queries(queries) as captured:
                response = logged_in.get(api_search_url(), params)
            assert response.status_code == 200
            assert len(response.json()["results"]) == start + 15
            counts.append(len(captured))
        assert counts[1] == counts[0]
