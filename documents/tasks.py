"""Celery tasks: thin wrappers that take ids and call one service."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from documents.embeddings import EmbeddingProviderError
from documents.services.dispatch import INDEX_TASK, documents_index_attempt


@shared_task(
    name=INDEX_TASK,
    bind=True,
    autoretry_for=(EmbeddingProviderError,),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
    ignore_result=True,
    acks_late=True,
)
def documents_embed(self: Any, document_ids: list[int], force: bool = False) -> None:
    """Index documents; provider failures are retried with backoff."""
    documents_index_attempt(
        document_ids=document_ids,
        force=force,
        attempt=self.request.retries + 1,
        final=self.request.retries >= self.max_retries,
    )
