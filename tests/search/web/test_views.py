"""The search page, its results, pages and query count, and the document page."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from documents.selectors import search_model_name
from search.models import SearchQueryLog
from search.ranking.backends import SearchMode
from tests.factories import make_document
from tests.search.web.helpers import (
    MODES,
    api_search_url,
    document_url,
    html_of,
    make_budget_documents,
    search_url,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from pytest_django import DjangoAssertNumQueries

    from documents.models import Document

pytestmark = pytest.mark.django_db


class TestLoginRequired:
    @pytest.mark.parametrize("path", ["/", "/search/?q=vacation", "/documents/1/"])
    def test_pages_redirect_to_login(self, client: Client, path: str) -> None:
        """Anonymous visitors are sent to the login page."""
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))

    @pytest.mark.parametrize("path", ["/api/search?q=vacation", "/api/documents/1"])
    def test_api_answers_401(self, client: Client, path: str) -> None:
        """Anonymous API calls get a JSON 401, not a redirect."""
        response = client.get(path)
        assert response.status_code == 401
        assert response.json() == {"error": "authentication required"}

    def test_login_page_renders(self, client: Client) -> None:
        """The login page renders with the site's layout."""
        response = client.get(reverse("login"))
        assert response.status_code == 200
        assert "Sign in" in html_of(response)

    def test_home_redirects_to_search(self, logged_in: Client) -> None:
        """The site root opens the search page."""
        response = logged_in.get("/")
        assert response.status_code == 302
        assert response["Location"] == search_url()


class TestSearchPage:
    @pytest.mark.parametrize("mode", MODES)
    def test_results_are_highlighted(
        self, logged_in: Client, vacation: Document, expenses: Document, mode: str
    ) -> None:
        """Every mode renders the matching document with its terms marked."""
        response = logged_in.get(search_url(), {"q": "vacation", "mode": mode})
        assert response.status_code == 200
        page = response.context["page"]
        assert page.items[0].document.pk == vacation.pk
        content = html_of(response)
        assert "Vacation policy" in content
        assert "<mark>vacation</mark>" in content.lower()
        assert "<html" in content
        assert re.search(rf'value="{mode}"[^>]*checked', content) is not None

    def test_mode_defaults_to_hybrid(self, logged_in: Client, vacation: Document) -> None:
        """Without a mode the search is hybrid, and the switch shows it."""
        response = logged_in.get(search_url(), {"q": "vacation"})
        assert response.context["page"].mode == SearchMode.HYBRID
        assert re.search(r'value="hybrid"[^>]*checked', html_of(response)) is not None

    def test_htmx_request_gets_only_the_results(
        self, logged_in: Client, vacation: Document
    ) -> None:
        """An htmx request is answered with the results partial alone."""
        response = logged_in.get(
            search_url(), {"q": "vacation", "mode": "keyword"}, headers={"HX-Request": "true"}
        )
        assert response.status_code == 200
        content = html_of(response)
        assert "<html" not in content
        assert "<form" not in content
        assert "Vacation policy" in content
        assert [t.name for t in response.templates] == ["search/_results.html"]
        assert "HX-Request" in response["Vary"]

    def test_history_restore_gets_the_whole_page(
        self, logged_in: Client, vacation: Document
    ) -> None:
        """htmx restoring history after a cache miss needs the full page."""
        response = logged_in.get(
            search_url(),
            {"q": "vacation"},
            headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
        )
        assert "<html" in html_of(response)

    def test_no_query_shows_the_intro(self, logged_in: Client) -> None:
        """The bare page explains the modes and searches nothing."""
        response = logged_in.get(search_url())
        assert response.status_code == 200
        assert "Search the document collection" in html_of(response)
        assert SearchQueryLog.objects.exists() is False

    def test_invalid_options_are_shown_not_raised(self, logged_in: Client) -> None:
        """Bad parameters give the page back with the errors listed."""
        response = logged_in.get(
            search_url(),
            {
                "q": "vacation",
                "mode": "bogus",
                "page": "-1",
                "date_from": "notadate",
                "owner": "nobody",
                "source_type": "exe",
            },
        )
        assert response.status_code == 200
        content = html_of(response)
        assert "Some search options are not valid." in content
        errors = response.context["form"].errors
        assert set(errors) == {"mode", "page", "date_from", "owner", "source_type"}
        assert SearchQueryLog.objects.exists() is False

    @pytest.mark.parametrize(
        "params",
        [
            {"q": "a\x00b"},
            {"q": "vacation", "tag": "a\x00b"},
            {"q": "vacation", "owner": "a\x00b"},
            {"q": "vacation", "date_from": "0000-00-00"},
            {"q": "vacation", "page": "99999999999999999999"},
            {"q": "vacation", "page": "1.5"},
            {"q": "vacation", "tag": ",".join(f"t{n}" for n in range(30))},
            {"q": "vacation", "tag": "x" * 100},
            {"q": "x" * 5000},
            {"q": '"unbalanced -"" OR || -'},
        ],
    )
    def test_odd_input_never_fails(self, logged_in: Client, params: dict[str, str]) -> None:
        """Odd or hostile parameters give a page (or a 400 from the API), never a 500."""
        assert logged_in.get(search_url(), params).status_code == 200
        assert logged_in.get(api_search_url(), params).status_code in (200, 400)

    def test_filters_narrow_results(
        self, logged_in: Client, vacation: Document, expenses: Document
    ) -> None:
        """Tag filters apply, whether given repeated or comma-separated."""
        response = logged_in.get(search_url(), {"q": "days", "mode": "keyword"})
        assert {i.document.pk for i in response.context["page"].items} == {
            vacation.pk,
            expenses.pk,
        }
        for params in ({"tag": "finance"}, {"tag": "Finance, other"}):
            response = logged_in.get(search_url(), {"q": "days", "mode": "keyword", **params})
            assert [i.document.pk for i in response.context["page"].items] == [expenses.pk]

    def test_owner_filter(self, logged_in: Client, user: User, vacation: Document) -> None:
        """The owner filter takes a username."""
        mine = make_document("My vacation notes", "Vacation plans.", owner=user)
        response = logged_in.get(
            search_url(), {"q": "vacation", "mode": "keyword", "owner": user.username}
        )
        assert [i.document.pk for i in response.context["page"].items] == [mine.pk]

    def test_empty_result_offers_other_modes_and_titles(
        self, logged_in: Client, vacation: Document
    ) -> None:
        """With no hits the page suggests similar titles and the other modes."""
        response = logged_in.get(search_url(), {"q": "vacaton", "mode": "keyword"})
        content = html_of(response)
        assert response.context["page"].items == []
        assert "No documents match" in content
        assert "mode=semantic" in content
        assert "mode=hybrid" in content
        assert [s.document_id for s in response.context["page"].suggestions] == [vacation.pk]
        assert document_url(vacation) in content

    def test_query_count_does_not_grow_with_results(self, logged_in: Client) -> None:
        """Rendering a page of results costs the same queries for 1 or 10 hits."""
        make_document("Budget 0", "Quarterly budget review.")

        def count() -> int:
            with CaptureQueriesContext(connection) as queries:
                response = logged_in.get(search_url(), {"q": "budget", "mode": "keyword"})
            assert response.status_code == 200
            return len(queries)

        few = count()
        for number in range(1, 10):
            make_document(f"Budget {number}", f"Quarterly budget review number {number}.")
        assert count() == few


class TestDocumentPage:
    def test_shows_metadata_text_and_chunks(
        self, logged_in: Client, user: User, vacation: Document
    ) -> None:
        """The page lists metadata, the full text and the chunks."""
        response = logged_in.get(document_url(vacation))
        content = html_of(response)
        assert vacation.text in content
        assert "Plain text" in content or "Typed in" in content
        assert "hr" in content
        assert vacation.embedding_model in content
        assert "<details" in content
        chunks = list(response.context["chunks"])
        assert chunks
        assert f"{chunks[0].start_offset}\u2013{chunks[0].end_offset}" in content


class TestPagination:
    @pytest.fixture
    def reports(self) -> list[Document]:
        return [
            make_document(f"Quarterly report {n}", f"Quarterly revenue report number {n}.")
            for n in range(15)
        ]

    def test_pages_of_ten(self, logged_in: Client, reports: list[Document]) -> None:
        """Fifteen hits make a full first page with a next link and a short second."""
        params: dict[str, Any] = {"q": "quarterly", "mode": "keyword", "tag": ""}
        first = logged_in.get(search_url(), params)
        page = first.context["page"]
        assert (len(page.items), page.has_next, page.has_previous) == (10, True, False)
        assert page.total == 15
        content = html_of(first)
        assert "page=2" in content
        assert "q=quarterly" in content
        assert "mode=keyword" in content

        second = logged_in.get(search_url(), {**params, "page": 2})
        page = second.context["page"]
        assert (len(page.items), page.has_next, page.has_previous) == (5, False, True)
        seen = {i.document.pk for i in first.context["page"].items}
        assert seen.isdisjoint({i.document.pk for i in page.items})
        assert 'rel="prev"' in html_of(second)
        assert 'rel="next"' not in html_of(second)

    def test_api_pages(self, logged_in: Client, reports: list[Document]) -> None:
        """The API pages the same way."""
        first = logged_in.get(api_search_url(), {"q": "quarterly", "mode": "keyword"}).json()
        assert (len(first["results"]), first["has_next"]) == (10, True)
        second = logged_in.get(
            api_search_url(), {"q": "quarterly", "mode": "keyword", "page": "2"}
        ).json()
        assert (len(second["results"]), second["has_next"]) == (5, False)


class TestQueryCount:
    """The search page costs a fixed number of queries, however many documents match.

    Keyword: the session, the user, the ranking statement, the page's
    documents, their snippets and the log entry. Hybrid adds its keyword leg
    (run while the query is embedded), a savepoint, its
    two ``SET LOCAL`` HNSW options and its release, a count of the visible
    chunks (the index scan was short: would an exact scan find more?) and the
    best chunks' texts.
    """

    @pytest.mark.parametrize(("mode", "queries"), [("keyword", 6), ("hybrid", 13)], ids=str)
    @pytest.mark.parametrize(
        ("page", "shown"), [(1, (10, 10)), (2, (5, 10))], ids=["page-1", "page-2"]
    )
    def test_doubling_the_documents_adds_no_query(
        self,
        logged_in: Client,
        django_assert_max_num_queries: DjangoAssertNumQueries,
        mode: str,
        queries: int,
        page: int,
        shown: tuple[int, int],
    ) -> None:
        """15 or 30 matching documents (5 or 10 of them on page 2): the same queries."""
        params: dict[str, Any] = {"q": "budget", "mode": mode, "page": page}
        search_model_name()  # Cached per process: the first search looks it up.
        counts = []
        for start, expected in zip((0, 15), shown, strict=True):
            make_budget_documents(15, start=start)
            with django_assert_max_num_queries(queries) as captured:
                response = logged_in.get(search_url(), params)
            assert response.status_code == 200
            assert len(response.context["page"].items) == expected
            counts.append(len(captured))
        assert counts[1] == counts[0]
