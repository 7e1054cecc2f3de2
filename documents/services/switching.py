"""Switching embedding models: the cut-over from a staged index to the live one.

While a collection is re-embedded with a new model, each document's new
chunks are staged beside its live ones (``Document.staged_model``, see
:mod:`documents.services.indexing`). Search uses the old model until the new
one covers the collection (``documents.selectors.search_model_name``); then
:func:`documents_cut_over` makes every staged index live.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from django.db import connection, transaction

from documents.models import Chunk, Document
from documents.selectors import forget_search_model, search_model_name
from documents.signals import search_model_changed

logger = logging.getLogger(__name__)

#: Documents made live per transaction of the cut-over.
CUT_OVER_BATCH: Final = 1000


def documents_cut_over(*, model_name: str, force: bool = False) -> int:
    """Make ``model_name``'s staged indexes live once it covers the collection.

    From the moment no document waits for the model, semantic search uses
    it (``documents.selectors.search_model_name``), over the staged chunks;
    this then gives each staged document the model's document vector, drops
    its other chunks, and tells the app (``search_model_changed``). Safe to
    run from several workers at once. Returns the documents made live.

    ``force`` cuts over although documents still wait (their re-embed
    failed): they lose their old vectors, keep their keyword index, and get
    vectors when a re-embed of theirs succeeds.
    """
    forget_search_model()
    if force:
        _release_waiting(model_name)
        forget_search_model()
    if search_model_name() != model_name:
        return 0
    done = 0
    while batch := list(
        Document.objects.filter(staged_model=model_name)
        .order_by("pk")
        .values_list("pk", flat=True)[:CUT_OVER_BATCH]
    ):
        done += _cut_over(batch, model_name)
    if done or force:
        logger.info("Every document is embedded by %s: semantic search uses it now", model_name)
        search_model_changed.send(sender=Document, model=model_name)
    return done


def _release_waiting(model_name: str) -> None:
    """Turn the indexes of documents still waiting into ``model_name``'s, without vectors."""
    waiting = Document.objects.exclude(embedding_model__in=["", model_name]).exclude(
        staged_model=model_name
    )
    with transaction.atomic():
        ids = list(waiting.select_for_update(no_key=True).values_list("pk", flat=True))
        with connection.cursor() as cursor:
            _drop_other_sets(cursor, ids)
        Chunk.objects.filter(document_id__in=ids).exclude(embedding_model=model_name).update(
            embedding=None, embedding_model=model_name
        )
        Document.objects.filter(pk__in=ids).update(
            embedding=None, embedding_model=model_name, embedded_at=None, staged_model=""
        )
    logger.warning("Cut over to %s with %d documents not embedded by it", model_name, len(ids))


def _cut_over(document_ids: list[int], model_name: str) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE documents_document d SET embedding = v.embedding, embedding_model = %s,"
            " staged_model = '', embedded_at = now()"
            " FROM (SELECT c.document_id, l2_normalize(avg(c.embedding)) AS embedding"
            "       FROM documents_chunk c"
            "       WHERE c.document_id = ANY(%s) AND c.embedding_model = %s"
            "       GROUP BY c.document_id) v"
            " WHERE d.id = v.document_id AND d.staged_model = %s",
            [model_name, document_ids, model_name, model_name],
        )
        moved = cursor.rowcount
        _drop_other_sets(cursor, document_ids)
    return moved


def _drop_other_sets(cursor: Any, document_ids: list[int]) -> None:
    """Delete the documents' chunks of every model but their live one."""
    cursor.execute(
        "DELETE FROM documents_chunk c USING documents_document d"
        " WHERE c.document_id = d.id AND d.id = ANY(%s) AND c.embedding_model <> d.embedding_model",
        [document_ids],
    )
