"""Factories that create documents through the real pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from documents.models import Document
from documents.services import document_create, documents_embed

if TYPE_CHECKING:
    from collections.abc import Iterable


def make_document(
    title: str, text: str, *, tags: Iterable[str] = (), index: bool = True, **kwargs: Any
) -> Document:
    """Create a document and (by default) index it synchronously."""
    document = document_create(title=title, text=text, tags=tags, **kwargs)
    if index:
        documents_embed(document_ids=[document.pk])
        document.refresh_from_db()
    return document
