"""Celery tasks: thin wrappers that take ids and call one service."""

from __future__ import annotations

import logging

from celery import shared_task

from documents.embeddings import EmbeddingProviderError

logger = logging.getLogger(__name__)

_MAX_RETRIES = 5


@shared_task(
    bind=True,
    autoretry_for=(EmbeddingProviderError,),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=_MAX_RETRIES,
    ignore_result=True,
    acks_late=True,
)
def documents_embed(self, document_ids: list[int], force: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Index documents; provider failures are retried with backoff."""
    from documents.services import document_mark_failed
    from documents.services import documents_embed as embed

    try:
        embed(document_ids=document_ids, force=force)
    except EmbeddingProviderError as exc:
        attempt = self.request.retries + 1
        final = self.request.retries >= self.max_retries
        message = (
            f"embedding provider failed {attempt} times, gave up: {exc}"
            if final
            else f"embedding provider failed (attempt {attempt}), retrying: {exc}"
        )
        for document_id in document_ids:
            document_mark_failed(document_id=document_id, error=message, final=final)
        if final:
            logger.error("Giving up on documents %s: %s", document_ids, exc)
            return
        raise
    except Exception as exc:
        # Not the provider: retrying will not help. Say what went wrong.
        logger.exception("Indexing documents %s failed", document_ids)
        for document_id in document_ids:
            document_mark_failed(document_id=document_id, error=f"indexing failed: {exc}")
