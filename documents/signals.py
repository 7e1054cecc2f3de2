"""Save a document and it gets indexed: queue the pipeline after commit."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from documents.models import Document


@receiver(post_save, sender=Document, dispatch_uid="document_queue_embedding")
def queue_embedding(sender: type[Document], instance: Document, **kwargs: Any) -> None:
    """Queue indexing when the content differs from what was indexed."""
    from documents.services.embed import queue_document_indexing

    if instance.content_hash != instance.embedded_hash:
        queue_document_indexing(instance.pk)
