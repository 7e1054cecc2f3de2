"""Writes on documents: the one write path, and the indexing pipeline."""

from documents.services.dispatch import (
    INDEX_TASK,
    documents_index_attempt,
    documents_index_queue,
    documents_reembed,
)
from documents.services.documents import (
    ImportOutcome,
    IngestResult,
    clean_tags,
    document_create,
    document_ingest_bytes,
    document_language,
    document_save,
    document_update,
    documents_bulk_create,
)
from documents.services.indexing import (
    chunks_embed_companion,
    document_embed,
    document_index_keywords,
    documents_embed,
    documents_mark_failed,
)
from documents.services.switching import documents_cut_over

__all__ = [
    "INDEX_TASK",
    "ImportOutcome",
    "IngestResult",
    "chunks_embed_companion",
    "clean_tags",
    "document_create",
    "document_embed",
    "document_index_keywords",
    "document_ingest_bytes",
    "document_language",
    "document_save",
    "document_update",
    "documents_bulk_create",
    "documents_cut_over",
    "documents_embed",
    "documents_index_attempt",
    "documents_index_queue",
    "documents_mark_failed",
    "documents_reembed",
]
