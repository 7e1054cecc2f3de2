"""The search pages, the document page and the JSON API."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from search.models import SearchQueryLog, SearchResultClick
from search.ranking.backends import SearchMode
from tests.factories import make_document

if TYPE_CHECKING:
    from django.contrib.auth.models import Group, User
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

    from documents.models import Document

pytestmark = pytest.mark.django_db

MODES = [mode.value for mode in SearchMode]
XSS = "<script>alert('xss')</script>"


def search_url() -> str:
    return reverse("search:search")


def api_search_url() -> str:
    return reverse("search:api_search")


def document_url(document: Document) -> str:
    return reverse("search:document", args=[document.pk])


def api_document_url(document: Document) -> str:
    return reverse("search:api_document", args=[document.pk])


def html_of(response: TestResponse) -> str:
    return response.content.decode()


def api_ids(client: Client, **params: Any) -> list[int]:
    response = client.get(api_search_url(), params)
    assert response.status_code == 200, response.content
    return [result["id"] for result in response.json()["results"]]


@pytest.fixture
def vacation() -> Document:
    return make_document(
        "Vacation policy",
        "Employees receive twenty vacation days per year. Unused vacation expires.",
        tags=["hr", "policy"],
    )


@pytest.fixture
def expenses() -> Document:
    return make_document(
        "Expense reports",
        "Submit expense reports with receipts within thirty days of travel.",
        tags=["finance"],
    )


@pytest.fixture
def logged_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


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


class TestEscaping:
    @pytest.fixture
    def nasty(self) -> Document:
        return make_document(
            f"Budget {XSS} memo",
            f"The budget memo body {XSS} mentions the budget twice.",
            tags=["<b>tag</b>"],
        )

    @pytest.mark.parametrize("mode", MODES)
    def test_search_page_escapes(self, logged_in: Client, nasty: Document, mode: str) -> None:
        """Markup in titles, text and the query is shown, never run."""
        response = logged_in.get(search_url(), {"q": f"budget {XSS}", "mode": mode})
        content = html_of(response)
        assert response.context["page"].items
        assert "<script>alert" not in content
        assert "&lt;script&gt;alert" in content
        assert "<b>tag</b>" not in content

    def test_htmx_partial_escapes(self, logged_in: Client, nasty: Document) -> None:
        """The partial escapes as the full page does."""
        response = logged_in.get(
            search_url(), {"q": f"budget {XSS}"}, headers={"HX-Request": "true"}
        )
        content = html_of(response)
        assert "<script>alert" not in content
        assert "&lt;script&gt;alert" in content

    def test_empty_result_escapes_the_query(self, logged_in: Client) -> None:
        """The query echoed in the empty state is escaped."""
        response = logged_in.get(search_url(), {"q": f"zzyzx {XSS}", "mode": "keyword"})
        content = html_of(response)
        assert "<script>alert" not in content
        assert "&lt;script&gt;alert" in content

    @pytest.mark.parametrize("mode", MODES)
    def test_api_snippet_escapes(self, logged_in: Client, nasty: Document, mode: str) -> None:
        """The API snippet is escaped HTML whose only markup is <mark>."""
        # The query itself stays clear of the markup words so that the
        # snippet keeps "&lt;script&gt;alert" unbroken by <mark> tags.
        response = logged_in.get(api_search_url(), {"q": "budget memo", "mode": mode})
        assert response.status_code == 200
        assert b"<script>alert" not in response.content
        result = response.json()["results"][0]
        assert result["id"] == nasty.pk
        assert "<script>alert" not in result["snippet"]
        assert "&lt;script&gt;alert" in result["snippet"]
        assert result["snippet"].replace("<mark>", "").replace("</mark>", "").count("<") == 0
        assert "<mark>" not in result["snippet_text"]
        assert XSS in result["snippet_text"]  # Plain text: the client escapes it.

    def test_document_page_escapes(self, logged_in: Client, nasty: Document) -> None:
        """The document page escapes its title, text, tags and chunks."""
        response = logged_in.get(document_url(nasty))
        content = html_of(response)
        assert response.status_code == 200
        assert "<script>alert" not in content
        assert content.count("&lt;script&gt;alert") >= 3  # Title, heading, text.
        assert "<b>tag</b>" not in content


class TestVisibility:
    @pytest.fixture
    def secret(self, hr_group: Group) -> Document:
        return make_document(
            "Salary bands",
            "Confidential salary bands for every engineer level.",
            groups=[hr_group],
        )

    @pytest.fixture
    def public(self) -> Document:
        return make_document("Salary survey", "The public salary survey method.")

    @pytest.mark.parametrize("mode", MODES)
    def test_outsider_never_sees_restricted(
        self, client: Client, other_user: User, secret: Document, public: Document, mode: str
    ) -> None:
        """A group-restricted document is absent for non-members in every mode."""
        client.force_login(other_user)
        response = client.get(search_url(), {"q": "salary bands", "mode": mode})
        assert [i.document.pk for i in response.context["page"].items] == [public.pk]
        assert "Salary bands" not in html_of(response)
        assert api_ids(client, q="salary bands", mode=mode) == [public.pk]

    def test_outsider_gets_no_title_suggestion(
        self, client: Client, other_user: User, secret: Document
    ) -> None:
        """Spelling suggestions draw only on visible titles."""
        client.force_login(other_user)
        response = client.get(search_url(), {"q": "Salary bandz", "mode": "keyword"})
        assert "Salary bands" not in html_of(response)
        assert response.context["page"].suggestions == []

    @pytest.mark.parametrize("mode", MODES)
    def test_member_sees_restricted(
        self, client: Client, user: User, hr_group: Group, secret: Document, mode: str
    ) -> None:
        """Members of the document's group find it."""
        user.groups.add(hr_group)
        client.force_login(user)
        assert secret.pk in api_ids(client, q="salary bands", mode=mode)

    def test_document_page_404_for_outsider(
        self, client: Client, other_user: User, secret: Document
    ) -> None:
        """The document page and API answer 404 (not 403) to non-members."""
        client.force_login(other_user)
        assert client.get(document_url(secret)).status_code == 404
        response = client.get(api_document_url(secret))
        assert response.status_code == 404
        assert response.json() == {"error": "Document not found."}

    def test_document_page_200_for_member(
        self, client: Client, user: User, hr_group: Group, secret: Document
    ) -> None:
        """Members open the document page and its API form."""
        user.groups.add(hr_group)
        client.force_login(user)
        response = client.get(document_url(secret))
        assert response.status_code == 200
        content = html_of(response)
        assert "Salary bands" in content
        assert "HR" in content
        assert "Confidential salary bands" in content
        data = client.get(api_document_url(secret)).json()
        assert data["id"] == secret.pk
        assert data["groups"] == ["HR"]

    def test_missing_document_is_404(self, logged_in: Client) -> None:
        """Unknown ids look exactly like invisible ones."""
        assert logged_in.get("/documents/999999/").status_code == 404
        assert logged_in.get("/api/documents/999999").status_code == 404


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


class TestLogging:
    def test_search_is_logged(self, logged_in: Client, user: User, vacation: Document) -> None:
        """Each page search stores the query, its result count and latency."""
        logged_in.get(search_url(), {"q": "vacation", "mode": "keyword", "tag": "hr"})
        log = SearchQueryLog.objects.get()
        assert log.user == user
        assert log.query == "vacation"
        assert log.mode == "keyword"
        assert log.source == "web"
        assert log.result_count == 1
        assert log.latency_ms > 0
        assert log.filters == {"tags": ["hr"]}

    def test_api_search_is_logged(self, logged_in: Client, vacation: Document) -> None:
        """API searches are logged with their own source."""
        data = logged_in.get(api_search_url(), {"q": "vacation"}).json()
        log = SearchQueryLog.objects.get()
        assert log.source == "api"
        assert data["search_id"] == log.pk

    def test_opening_a_result_logs_a_click(
        self, logged_in: Client, user: User, vacation: Document
    ) -> None:
        """Result links carry the search id and rank; opening one logs a click."""
        response = logged_in.get(search_url(), {"q": "vacation", "mode": "keyword"})
        log = SearchQueryLog.objects.get()
        link = f"{document_url(vacation)}?from_search={log.pk}&amp;rank=1"
        assert link in html_of(response)
        response = logged_in.get(document_url(vacation), {"from_search": log.pk, "rank": 1})
        assert response.status_code == 200
        click = SearchResultClick.objects.get()
        assert (click.search, click.user, click.document_id, click.rank) == (
            log,
            user,
            vacation.pk,
            1,
        )

    def test_no_click_for_an_invisible_document(
        self, client: Client, other_user: User, hr_group: Group
    ) -> None:
        """A click is recorded only once the document is known to be visible."""
        secret = make_document("Salary bands", "Confidential.", groups=[hr_group])
        client.force_login(other_user)
        client.get(search_url(), {"q": "salary"})
        log = SearchQueryLog.objects.get()
        response = client.get(document_url(secret), {"from_search": log.pk, "rank": 1})
        assert response.status_code == 404
        assert SearchResultClick.objects.exists() is False

    def test_no_click_for_someone_elses_search(
        self, client: Client, user: User, other_user: User, vacation: Document
    ) -> None:
        """A click never attaches to another user's search; bad ids are ignored."""
        client.force_login(other_user)
        client.get(search_url(), {"q": "vacation"})
        log = SearchQueryLog.objects.get()
        client.force_login(user)
        for params in ({"from_search": log.pk, "rank": 1}, {"from_search": "x", "rank": "y"}):
            assert client.get(document_url(vacation), params).status_code == 200
        assert SearchResultClick.objects.exists() is False


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
