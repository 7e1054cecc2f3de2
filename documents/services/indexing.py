"""The embedding pipeline: chunk, analyse, embed and store a document's index.

A document's chunks, keyword postings and document embedding are replaced in
one transaction, so search sees either the old index or the new one, never a
mix. Work is idempotent: a document whose content hash and model match what
was indexed is skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from pgvector import Vector

from config.celery import queue_on_commit
from documents.analysis import analyze, analyze_many, document_postings
from documents.embeddings import EmbeddingProviderError, get_embedder
from documents.ingestion import TextChunk, chunk_text
from documents.models import Document

if TYPE_CHECKING:
    from collections.abc import Sequence

    from documents.embeddings import EmbeddingProvider

logger = logging.getLogger(__name__)

#: Titles longer than this many tokens are not prefixed to chunk texts.
_TITLE_PREFIX_MAX_TOKENS: Final = 48
_MIN_CHUNK_TOKENS: Final = 64


@dataclass(slots=True)
class _Prepared:
    """A document chunked and analysed, waiting for its vectors."""

    document_id: int
    content_hash: str
    chunks: list[TextChunk]
    embed_inputs: list[str]
    chunk_terms: list[list[str]]
    title_terms: list[str]
    postings: dict[str, float]
    term_count: float


def document_embed(*, document_id: int, force: bool = False) -> None:
    """Index one document (see ``documents_embed``)."""
    documents_embed(document_ids=[document_id], force=force)


def documents_embed(*, document_ids: Sequence[int], force: bool = False) -> int:
    """Chunk, embed and store the index of many documents; return how many.

    Chunks of all documents are embedded in shared batches, so a bulk import
    runs near the model's own throughput. Raises ``EmbeddingProviderError``
    when the provider fails; the caller (the Celery task) retries.
    """
    embedder = get_embedder()
    documents = list(
        Document.objects.filter(pk__in=document_ids)
        .only(
            "pk",
            "title",
            "text",
            "content_hash",
            "embedded_hash",
            "embedding_model",
            "status",
        )
        .order_by("pk")
    )
    todo = [d for d in documents if force or not _is_current(d, embedder.name)]
    if not todo:
        return 0
    Document.objects.filter(pk__in=[d.pk for d in todo]).update(status=Document.Status.PROCESSING)
    prepared: list[_Prepared] = []
    for document in todo:
        try:
            prepared.append(_prepare(document, embedder))
        except Exception as exc:  # A bad document must not stop the batch.
            logger.exception("Could not prepare document %s", document.pk)
            documents_mark_failed(document_ids=[document.pk], error=f"chunking failed: {exc}")
    vectors = embedder.embed_texts([text for p in prepared for text in p.embed_inputs])
    offset = 0
    stored = 0
    for item in prepared:
        count = len(item.embed_inputs)
        try:
            stored += _store(item, vectors[offset : offset + count], embedder.name)
        except Exception as exc:  # One bad document must not stop the batch.
            logger.exception("Could not store the index of document %s", item.document_id)
            documents_mark_failed(document_ids=[item.document_id], error=f"indexing failed: {exc}")
        offset += count
    return stored


def _is_current(document: Document, model_name: str) -> bool:
    return (
        document.status == Document.Status.READY
        and document.embedded_hash == document.content_hash
        and document.embedding_model == model_name
    )


def title_prefix(title: str, embedder: EmbeddingProvider) -> tuple[str, int]:
    """What precedes every chunk of a document when embedded, and its tokens.

    The title gives each chunk its context; a title too long to spare the
    tokens is left out.
    """
    title = title.strip()
    tokens = embedder.count_tokens([title])[0] if title else 0
    if 0 < tokens <= _TITLE_PREFIX_MAX_TOKENS:
        return f"{title}\n", tokens + 1
    return "", 0


def _prepare(document: Document, embedder: EmbeddingProvider) -> _Prepared:
    title = document.title.strip()
    prefix, prefix_tokens = title_prefix(title, embedder)
    budget = max(embedder.max_tokens - prefix_tokens, _MIN_CHUNK_TOKENS)
    if settings.CHUNK_MAX_TOKENS:
        budget = min(budget, settings.CHUNK_MAX_TOKENS)
    chunks = chunk_text(
        document.text,
        count_tokens=embedder.count_tokens,
        max_tokens=budget,
        overlap_tokens=min(settings.CHUNK_OVERLAP_TOKENS, budget // 4),
    )
    embed_inputs = [prefix + chunk.text for chunk in chunks] or [title]
    title_terms = analyze(title)
    body_terms = analyze(document.text)
    postings, term_count = document_postings(title_terms=title_terms, body_terms=body_terms)
    return _Prepared(
        document_id=document.pk,
        content_hash=document.content_hash,
        chunks=chunks,
        embed_inputs=embed_inputs,
        chunk_terms=analyze_many([chunk.text for chunk in chunks]),
        title_terms=title_terms,
        postings=postings,
        term_count=term_count,
    )


def _store(item: _Prepared, vectors: np.ndarray, model_name: str) -> int:
    """Replace the document's index in one transaction; return 1 if stored."""
    document_vector = vectors.mean(axis=0)
    norm = float(np.linalg.norm(document_vector)) or 1.0
    document_vector = document_vector / norm
    with transaction.atomic():
        current = (
            Document.objects.select_for_update(no_key=True)
            .filter(pk=item.document_id)
            .values_list("content_hash", flat=True)
            .first()
        )
        if current is None:
            return 0  # Deleted while it was being embedded.
        if current != item.content_hash:
            # Edited while it was being embedded: the save queued another
            # task for the new text, which stores the right chunks.
            logger.info("Document %s changed during embedding; skipped", item.document_id)
            return 0
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM documents_chunk WHERE document_id = %s", [item.document_id])
            rows: list[tuple[Any, ...]] = [
                (
                    item.document_id,
                    chunk.position,
                    chunk.text,
                    chunk.start,
                    chunk.end,
                    chunk.token_count,
                    Vector(vector),
                    model_name,
                    # The first chunk also carries the title, so quoted
                    # phrases and exclusions see it ('||' keeps title and
                    # body positions apart: no phrase spans the two).
                    " ".join(item.title_terms) if chunk.position == 0 else "",
                    " ".join(terms),
                )
                for chunk, vector, terms in zip(
                    item.chunks, vectors, item.chunk_terms, strict=False
                )
            ]
            cursor.executemany(
                "INSERT INTO documents_chunk (document_id, position, text, start_offset,"
                " end_offset, token_count, embedding, embedding_model, search_vector,"
                " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s::vector,"
                " %s, setweight(to_tsvector('simple', %s), 'A')"
                " || to_tsvector('simple', %s), now(), now())",
                rows,
            )
            cursor.execute(
                "DELETE FROM documents_documentterm WHERE document_id = %s", [item.document_id]
            )
            cursor.execute(
                "INSERT INTO documents_documentterm (document_id, term, tf, doc_length)"
                " SELECT %s, t, f, %s FROM unnest(%s::text[], %s::float8[]) AS u(t, f)",
                [
                    item.document_id,
                    item.term_count,
                    list(item.postings),
                    [float(v) for v in item.postings.values()],
                ],
            )
        Document.objects.filter(pk=item.document_id).update(
            status=Document.Status.READY,
            last_error="",
            embedded_hash=item.content_hash,
            embedding_model=model_name,
            embedding=document_vector.tolist(),
            embedded_at=timezone.now(),
            term_count=item.term_count,
        )
    logger.debug("Indexed document %s: %d chunks", item.document_id, len(item.chunks))
    return 1


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


def documents_mark_failed(*, document_ids: Sequence[int], error: str, final: bool = True) -> int:
    """Record that indexing failed, in one statement; the previous index stays searchable.

    ``final=False`` records a failed attempt that will be retried: the
    documents stay pending with the error shown. A document whose current
    content is already indexed (a newer task succeeded) is left alone.
    """
    status = Document.Status.FAILED if final else Document.Status.PENDING
    return (
        Document.objects.filter(pk__in=list(document_ids))
        .exclude(status=Document.Status.READY, embedded_hash=F("content_hash"))
        .update(status=status, last_error=error[:2000])
    )


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


__all__ = [
    "INDEX_TASK",
    "EmbeddingProviderError",
    "document_embed",
    "documents_embed",
    "documents_index_attempt",
    "documents_index_queue",
    "documents_mark_failed",
    "documents_reembed",
]
