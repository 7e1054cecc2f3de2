"""Reads of single documents, filtered by what the user may see."""

from __future__ import annotations

from typing import TYPE_CHECKING

from documents.models import Chunk, Document

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.auth.models import User as AuthUser
    from django.db.models import QuerySet

    User = AuthUser | AnonymousUser


def document_detail(*, user: User | None, document_id: int) -> Document | None:
    """A document the user may see, or None (shown as 404: no existence leak)."""
    return (
        Document.objects.visible_to(user)
        .select_related("owner")
        .prefetch_related("groups")
        .filter(pk=document_id)
        .first()
    )


def document_chunks(document: Document) -> QuerySet[Chunk]:
    return document.chunks.defer("embedding", "search_vector").order_by("position")
