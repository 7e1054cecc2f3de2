"""Indexing a document: its keyword index at once, its vectors in the background.

Two phases, so that a document is searchable by keyword the moment it is
saved while the (slow) model embeds in the background:

1. :func:`document_index_keywords`, inside the transaction that saves the
   document: chunks (cut with the model's tokenizer, without vectors) and
   keyword postings of its current text.
2. :func:`documents_embed`, in the Celery task: vectors for those chunks, or
   for a document whose chunks are not current (an edit, another model) a
   new index built and swapped in whole.

Each phase replaces what it writes in one transaction, so search sees a
document's old index or its new one, never a mix. A re-embed with another
model (same content) builds the new model's chunks beside the live ones
(``Document.staged_model``) and leaves the live index alone: search keeps
answering from the old vectors, with queries embedded by the old model,
until the new model covers the collection; then :func:`documents_cut_over`
makes the staged chunks live. Work is idempotent: a document indexed (or
staged) from its current content by the configured model is skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from pgvector import Vector

from documents.analysis import analyze, analyze_many, document_postings
from documents.embeddings import COMPANION_LANGUAGES, get_companion, get_embedder
from documents.ingestion import TextChunk, chunk_text
from documents.models import Chunk, Document
from documents.services.switching import documents_cut_over

if TYPE_CHECKING:
    from collections.abc import Sequence

    from documents.embeddings import EmbeddingProvider

logger = logging.getLogger(__name__)

#: Titles longer than this many tokens are not prefixed to chunk texts.
_TITLE_PREFIX_MAX_TOKENS: Final = 48
_MIN_CHUNK_TOKENS: Final = 64
#: Chunks the companion model embeds per database round trip.
_COMPANION_BATCH: Final = 256


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


@dataclass(slots=True)
class _Awaiting:
    """A document whose current chunks are stored and wait only for vectors."""

    document_id: int
    content_hash: str
    chunk_ids: list[int]
    embed_inputs: list[str] = field(default_factory=list)


def document_index_keywords(*, document: Document) -> None:
    """Make a saved document searchable by keyword now (phase 1).

    Stores the chunks of its current text (cut with the configured model's
    tokenizer, vectors to come) and its keyword postings. Should be called
    inside the transaction that saved the document.
    """
    embedder = get_embedder()
    _replace(_prepare(document, embedder), None, embedder.name, stage=False)


def document_embed(*, document_id: int, force: bool = False) -> None:
    """Index one document (see ``documents_embed``)."""
    documents_embed(document_ids=[document_id], force=force)


def documents_embed(*, document_ids: Sequence[int], force: bool = False) -> int:
    """Embed and store the index of many documents (phase 2); return how many.

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
            "staged_model",
            "embedded_at",
            "status",
        )
        .order_by("pk")
    )
    todo = [d for d in documents if force or not _is_current(d, embedder.name)]
    stored = _embed_main(todo, embedder, force=force) if todo else 0
    # Every document asked for, not only those embedded now: a run retried
    # after the companion failed, or queued by ``reembed --stale`` for the
    # companion alone, finds the main vectors current.
    chunks_embed_companion(document_ids=[d.pk for d in documents])
    return stored


def _embed_main(todo: list[Document], embedder: EmbeddingProvider, *, force: bool) -> int:
    """Embed and store the main model's index of ``todo``; return how many."""
    Document.objects.filter(pk__in=[d.pk for d in todo]).update(status=Document.Status.PROCESSING)
    staged = {d.pk for d in todo if _stages(d, embedder.name)}
    awaiting = {} if force else _awaiting_vectors(todo, embedder)
    items: list[_Prepared | _Awaiting] = []
    for document in todo:
        if document.pk in awaiting:
            items.append(awaiting[document.pk])
            continue
        try:
            items.append(_prepare(document, embedder))
        except Exception as exc:  # A bad document must not stop the batch.
            logger.exception("Could not prepare document %s", document.pk)
            documents_mark_failed(document_ids=[document.pk], error=f"chunking failed: {exc}")
    vectors = embedder.embed_texts([text for item in items for text in item.embed_inputs])
    offset = 0
    stored = 0
    for item in items:
        count = len(item.embed_inputs)
        try:
            stored += _store(
                item,
                vectors[offset : offset + count],
                embedder.name,
                stage=item.document_id in staged,
            )
        except Exception as exc:  # One bad document must not stop the batch.
            logger.exception("Could not store the index of document %s", item.document_id)
            documents_mark_failed(document_ids=[item.document_id], error=f"indexing failed: {exc}")
        offset += count
    if staged and stored:
        documents_cut_over(model_name=embedder.name)
    return stored


def chunks_embed_companion(*, document_ids: Sequence[int] | None = None) -> int:
    """Give chunks of English documents the companion model's vector; return how many.

    Chunks that lack it, or carry another companion model's, of the given
    documents (None: the whole collection, ``reembed --stale``). Each chunk
    is embedded as the main model embeds it (title prefix, then text) and
    updated by id, so a chunk replaced meanwhile (an edit) is simply not
    found: the edit's own run embeds its new chunks.
    """
    companion = get_companion()
    if companion is None:
        return 0
    chunks = Chunk.objects.filter(document__language__in=COMPANION_LANGUAGES).exclude(
        companion_model=companion.name
    )
    if document_ids is not None:
        chunks = chunks.filter(document_id__in=list(document_ids))
    done, after = 0, 0
    while True:
        rows = list(
            chunks.filter(id__gt=after)
            .order_by("id")
            .values_list("id", "text", "document__title")[:_COMPANION_BATCH]
        )
        if not rows:
            return done
        prefixes = {title: title_prefix(title, companion)[0] for title in {r[2] for r in rows}}
        vectors = companion.embed_texts([prefixes[title] + text for _, text, title in rows])
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE documents_chunk c SET companion_embedding = u.v::vector,"
                " companion_model = %s FROM unnest(%s::bigint[], %s::text[]) AS u(id, v)"
                " WHERE c.id = u.id",
                [
                    companion.name,
                    [chunk_id for chunk_id, _, _ in rows],
                    [Vector(v).to_text() for v in vectors],
                ],
            )
            done += cursor.rowcount
        after = rows[-1][0]


def _is_current(document: Document, model_name: str) -> bool:
    return (
        document.status == Document.Status.READY
        and document.embedded_hash == document.content_hash
        and model_name in (document.embedding_model, document.staged_model)
    )


def _stages(document: Document, model_name: str) -> bool:
    """Whether this run builds the document's index beside a live one.

    So it does when the document's live vectors are another model's and
    were made from its current content: they stay searchable meanwhile.
    """
    return (
        document.embedding_model not in ("", model_name)
        and document.embedded_hash == document.content_hash
        and document.embedded_at is not None
    )


def _awaiting_vectors(
    documents: Sequence[Document], embedder: EmbeddingProvider
) -> dict[int, _Awaiting]:
    """The documents whose current chunks, cut for this model, lack only vectors."""
    candidates = {
        d.pk: d
        for d in documents
        if d.embedded_hash == d.content_hash and d.embedding_model == embedder.name
    }
    if not candidates:
        return {}
    rows = (
        Chunk.objects.filter(document_id__in=list(candidates))
        .order_by("document_id", "position")
        .values_list("document_id", "id", "text", "embedding_model", "embedding")
    )
    chunks: dict[int, list[tuple[int, str]]] = {}
    complete: dict[int, bool] = {}
    for document_id, chunk_id, text, model, vector in rows:
        chunks.setdefault(document_id, []).append((chunk_id, text))
        fits = model == embedder.name and vector is None
        complete[document_id] = complete.get(document_id, True) and fits
    awaiting = {}
    for document_id, pieces in chunks.items():
        if not complete[document_id]:
            continue
        document = candidates[document_id]
        prefix, _ = title_prefix(document.title, embedder)
        awaiting[document_id] = _Awaiting(
            document_id=document_id,
            content_hash=document.content_hash,
            chunk_ids=[chunk_id for chunk_id, _ in pieces],
            embed_inputs=[prefix + text for _, text in pieces],
        )
    return awaiting


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


def chunk_budget(embedder: EmbeddingProvider, prefix_tokens: int = 0, language: str = "") -> int:
    """Tokens of document text per chunk: the model's chunk size for the
    document's language less the title."""
    budget = max(embedder.chunk_size(language) - prefix_tokens, _MIN_CHUNK_TOKENS)
    if settings.CHUNK_MAX_TOKENS:
        budget = min(budget, settings.CHUNK_MAX_TOKENS)
    return budget


def _prepare(document: Document, embedder: EmbeddingProvider) -> _Prepared:
    title = document.title.strip()
    prefix, prefix_tokens = title_prefix(title, embedder)
    budget = chunk_budget(embedder, prefix_tokens, document.language)
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


def _locked_hash(document_id: int) -> str | None:
    """Lock the document row (callers are inside a transaction); its content hash."""
    return (
        Document.objects.select_for_update(no_key=True)
        .filter(pk=document_id)
        .values_list("content_hash", flat=True)
        .first()
    )


def document_vectors_of(
    texts: Sequence[tuple[str, str]], embedder: EmbeddingProvider
) -> np.ndarray:
    """The document vectors the pipeline would store for (title, text) pairs.

    Chunked and embedded exactly as indexing does, nothing stored: for
    calibrating a model's near-copy threshold (``eval_related --near-copies``).
    """
    items = [_prepare(Document(title=title, text=text), embedder) for title, text in texts]
    vectors = embedder.embed_texts([text for item in items for text in item.embed_inputs])
    rows, offset = [], 0
    for item in items:
        rows.append(_document_vector(vectors[offset : offset + len(item.embed_inputs)]))
        offset += len(item.embed_inputs)
    return np.asarray(rows, dtype=np.float32)


def _document_vector(vectors: np.ndarray) -> list[float]:
    mean = vectors.mean(axis=0)
    return (mean / (float(np.linalg.norm(mean)) or 1.0)).tolist()


def _store(
    item: _Prepared | _Awaiting, vectors: np.ndarray, model_name: str, *, stage: bool
) -> int:
    """Store a document's vectors in one transaction; return 1 if stored."""
    if isinstance(item, _Prepared):
        return _replace(item, vectors, model_name, stage=stage)
    with transaction.atomic():
        current = _locked_hash(item.document_id)
        if current != item.content_hash:
            # Deleted, or edited while it was being embedded: the save
            # queued another task for the new text.
            logger.info("Document %s changed during embedding; skipped", item.document_id)
            return 0
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE documents_chunk c SET embedding = u.v::vector, updated_at = now()"
                " FROM unnest(%s::bigint[], %s::text[]) AS u(id, v)"
                " WHERE c.id = u.id AND c.document_id = %s AND c.embedding IS NULL",
                [item.chunk_ids, [Vector(v).to_text() for v in vectors], item.document_id],
            )
            if cursor.rowcount != len(item.chunk_ids):
                # Its chunks were replaced meanwhile (the text changed and
                # changed back): undo, the run queued by that save indexes it.
                transaction.set_rollback(True)
                return 0
        Document.objects.filter(pk=item.document_id).update(
            status=Document.Status.READY,
            last_error="",
            embedding=_document_vector(vectors),
            embedded_at=timezone.now(),
        )
    logger.debug("Embedded document %s: %d chunks", item.document_id, len(item.chunk_ids))
    return 1


def _replace(item: _Prepared, vectors: np.ndarray | None, model_name: str, *, stage: bool) -> int:
    """Replace the document's chunks, postings and vector in one transaction.

    Without ``vectors`` (phase 1) the chunks are stored without them and the
    document waits for its embedding. With ``stage`` only this model's
    chunks are written, beside the live index, which stays as it is (see the
    module docstring). Returns 1 if stored.
    """
    # A document without chunks has only its title's vector: nothing to keep.
    stage = stage and bool(item.chunks)
    with transaction.atomic():
        current = _locked_hash(item.document_id)
        if current is None:
            return 0  # Deleted while it was being embedded.
        if current != item.content_hash:
            # Edited while it was being embedded: the save queued another
            # task for the new text, which stores the right chunks.
            logger.info("Document %s changed during embedding; skipped", item.document_id)
            return 0
        with connection.cursor() as cursor:
            _write_chunks(cursor, item, vectors, model_name, replace_all=not stage)
            if not stage:  # Staged: same content, so the same postings.
                _write_postings(cursor, item)
        document = Document.objects.filter(pk=item.document_id)
        if stage:
            document.update(status=Document.Status.READY, last_error="", staged_model=model_name)
        elif vectors is None:
            document.update(
                embedded_hash=item.content_hash,
                embedding_model=model_name,
                staged_model="",
                embedding=None,
                embedded_at=None,
                term_count=item.term_count,
            )
        else:
            document.update(
                status=Document.Status.READY,
                last_error="",
                embedded_hash=item.content_hash,
                embedding_model=model_name,
                staged_model="",
                embedding=_document_vector(vectors),
                embedded_at=timezone.now(),
                term_count=item.term_count,
            )
    logger.debug("Indexed document %s: %d chunks", item.document_id, len(item.chunks))
    return 1


def _write_chunks(
    cursor: Any,
    item: _Prepared,
    vectors: np.ndarray | None,
    model_name: str,
    *,
    replace_all: bool,
) -> None:
    """Replace the document's chunks (all sets, or only this model's set)."""
    cursor.execute(
        "DELETE FROM documents_chunk WHERE document_id = %s"
        + ("" if replace_all else " AND embedding_model = %s"),
        [item.document_id] if replace_all else [item.document_id, model_name],
    )
    rows: list[tuple[Any, ...]] = [
        (
            item.document_id,
            chunk.position,
            chunk.text,
            chunk.start,
            chunk.end,
            chunk.token_count,
            None if vectors is None else Vector(vectors[chunk.position]),
            model_name,
            # The first chunk also carries the title, so quoted phrases and
            # exclusions see it ('||' keeps title and body positions apart:
            # no phrase spans the two).
            " ".join(item.title_terms) if chunk.position == 0 else "",
            " ".join(terms),
        )
        for chunk, terms in zip(item.chunks, item.chunk_terms, strict=True)
    ]
    cursor.executemany(
        "INSERT INTO documents_chunk (document_id, position, text, start_offset,"
        " end_offset, token_count, embedding, embedding_model, search_vector,"
        " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s::vector,"
        " %s, setweight(to_tsvector('simple', %s), 'A')"
        " || to_tsvector('simple', %s), now(), now())",
        rows,
    )


def _write_postings(cursor: Any, item: _Prepared) -> None:
    """Replace the document's keyword postings (with its BM25 length)."""
    cursor.execute("DELETE FROM documents_documentterm WHERE document_id = %s", [item.document_id])
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
