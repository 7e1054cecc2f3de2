"""Stored XSS: markup in a document's title, text, tags and file name is escaped everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest
from django.test import Client

from documents.models import Document
from documents.services import document_ingest_bytes, documents_embed
from tests.security.helpers import CHANGELIST_URL, MODES, change_url

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse
    from pytest_django.fixtures import Settings as SettingsWrapper

pytestmark = pytest.mark.django_db

SCRIPT: Final = "<script>alert(1)</script>"
IMG: Final = '"><img src=x onerror=alert(1)>'
RAW_MARKERS: Final = ("<script>alert", "<img src=x")


@pytest.fixture
def hostile(tmp_path: Path, settings: SettingsWrapper) -> Document:
    """A document whose title, text, tags and file name all carry markup."""
    settings.MEDIA_ROOT = tmp_path
    text = f"Quarterly figures {SCRIPT} and more quarterly figures {IMG} end."
    result = document_ingest_bytes(
        data=f"Quarterly figures {SCRIPT} {IMG}\n\n{text}".encode(),
        filename=f"{IMG}.txt",
        tags=[f"{SCRIPT}"],
    )
    assert result.document is not None
    document = result.document
    documents_embed(document_ids=[document.pk])
    document.refresh_from_db()
    assert document.title.startswith("Quarterly figures <script>")
    assert document.original_filename == f"{IMG}.txt"
    return document


def assert_no_markup(response: TestResponse) -> None:
    assert response.status_code == 200
    content = response.content.decode()
    for marker in RAW_MARKERS:
        assert marker not in content


class TestStoredXss:
    @pytest.mark.parametrize("mode", MODES)
    def test_search_results(self, admin_client: Client, hostile: Document, mode: str) -> None:
        """Search results (page, htmx partial and API) escape titles and snippets."""
        plain = {"q": "quarterly figures", "mode": mode}
        page = admin_client.get("/search/", plain)
        assert [item.document.pk for item in page.context["page"].items] == [hostile.pk]
        assert "&lt;script&gt;" in page.content.decode()
        assert admin_client.get("/api/search", plain).json()["results"][0]["title"] == (
            hostile.title
        )
        for params in (plain, {"q": f"quarterly {SCRIPT} {IMG}", "mode": mode}):
            assert_no_markup(admin_client.get("/search/", params))
            assert_no_markup(admin_client.get("/search/", params, headers={"HX-Request": "true"}))
            assert_no_markup(admin_client.get("/api/search", params))

    def test_document_page_and_api(self, admin_client: Client, hostile: Document) -> None:
        """The document page escapes title, text, tags and file name; the API body has no markup."""
        page = admin_client.get(f"/documents/{hostile.pk}/")
        assert_no_markup(page)
        assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;.txt" in page.content.decode()
        api = admin_client.get(f"/api/documents/{hostile.pk}")
        assert_no_markup(api)
        assert api.json()["text"] == hostile.text

    def test_admin_pages(self, admin_client: Client, hostile: Document) -> None:
        """The admin changelist, change, history and delete pages escape it all."""
        hostile.last_error = f"failed {SCRIPT}"
        hostile.save(update_fields=["last_error"])
        for path in (
            CHANGELIST_URL,
            f"{CHANGELIST_URL}?q=quarterly",
            change_url(hostile),
            f"/admin/documents/document/{hostile.pk}/history/",
            f"/admin/documents/document/{hostile.pk}/delete/",
        ):
            response = admin_client.get(path)
            assert_no_markup(response)
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.content.decode(), path
