"""Helpers of the security tests: search modes and the document admin's URLs and form data."""

from __future__ import annotations

from typing import Final

from documents.models import Document
from search.ranking.backends import SearchMode

MODES: Final = [mode.value for mode in SearchMode]
ADD_URL: Final = "/admin/documents/document/add/"
CHANGELIST_URL: Final = "/admin/documents/document/"
INLINE_MANAGEMENT: Final = {
    "chunks-TOTAL_FORMS": "0",
    "chunks-INITIAL_FORMS": "0",
    "chunks-MIN_NUM_FORMS": "0",
    "chunks-MAX_NUM_FORMS": "1000",
}


def change_url(document: Document) -> str:
    return f"/admin/documents/document/{document.pk}/change/"
