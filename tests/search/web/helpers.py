"""Helpers of the page and API tests: modes, URLs, response bodies, matching documents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.test import Client
from django.urls import reverse

from documents.services import documents_embed
from search.ranking.backends import SearchMode
from tests.factories import make_document

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

    from documents.models import Document

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


def make_budget_documents(count: int, *, start: int = 0) -> list[Document]:
    """``count`` indexed documents that all match "budget", each with tags and chunks."""
    documents = [
        make_document(
            f"Budget {number}",
            f"Quarterly budget review number {number}. " * 3,
            tags=["finance", f"team-{number}"],
            index=False,
        )
        for number in range(start, start + count)
    ]
    documents_embed(document_ids=[document.pk for document in documents])
    return documents
