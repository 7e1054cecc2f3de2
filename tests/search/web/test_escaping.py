"""Markup in documents and queries is shown as text on every page and in the API."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.test import Client

from tests.factories import make_document
from tests.search.web.helpers import MODES, XSS, api_search_url, document_url, html_of, search_url

if TYPE_CHECKING:
    from documents.models import Document

pytestmark = pytest.mark.django_db


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
