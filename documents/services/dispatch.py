"""Queueing the indexing task, and what one attempt of it records."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from django.conf import settings

from config.celery import queue_on_commit
from documents.embeddings import EmbeddingProviderError
from documents.models import Document
from documents.services.indexing import documents_embed, documents_mark_failed

if TYPE_CHECKING:
    from collections.abc import Sequence

logger = logging.getLogger(__name__)

#: The indexing task, by name (see ``config.celery.queue_on_commit``).
INDEX_TASK: Final = "documents.tasks.documents_embed"


def documents_index_queue(*, document_ids: Sequence[int], force: bool = False) -> int:
    """Queue indexing of documents after commit, one task per batch; return how many.

    Batches of ``EMBEDDING_TASK_BATCH`` documents let the model embed many
    chunks together (sorted by length), which is where its throughput is.
    """
    ids = list(dict.fromkeys(document_ids))
    batch = settings.EMBEDDING_TASK_BATCH
    for start in range(0, len(ids), batch):
        queue_on_commit(INDEX_TASK, ids[start : start + batch], force)
    return len(ids)


def documents_reembed(*, document_ids: Sequence[int]) -> int:
    """Index documents again even if their index is current (admin, ``reembed --all``)."""
    ids = list(dict.fromkeys(document_ids))
    Document.objects.filter(pk__in=ids).update(status=Document.Status.PENDING, last_error="")
    return documents_index_queue(document_ids=ids, force=True)


def documents_index_attempt(
    *, document_ids: Sequence[int], force: bool, attempt: int, final: bool
) -> None:
    """One attempt of the indexing task: index, or record why it failed.

    A provider error is re-raised unless this is the ``final`` attempt, so
    that the task retries it with backoff; any other error is recorded as
    final at once, since retrying would not help.
    """
    try:
        documents_embed(document_ids=document_ids, force=force)
    except EmbeddingProviderError as exc:
        message = (
            f"embedding provider failed {attempt} times, gave up: {exc}"
            if final
            else f"embedding provider failed (attempt {attempt}), retrying: {exc}"
        )
        documents_mark_failed(document_ids=document_ids, error=message, final=final)
        if not final:
            raise
        logger.error("Giving up on documents %s: %s", document_ids, exc)
    except Exception as exc:
        logger.exception("Indexing documents %s failed", document_ids)
        documents_mark_failed(document_ids=document_ids, error=f"indexing failed: {exc}")
