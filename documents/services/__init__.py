"""Writes on documents: the one write path, and the indexing pipeline."""

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
    document_embed,
    documents_embed,
    documents_index_attempt,
    documents_index_queue,
    documents_mark_failed,
    documents_reembed,
)

__all__ = [
    "ImportOutcome",
    "IngestResult",
    "clean_tags",
    "document_create",
    "document_embed",
    "document_ingest_bytes",
    "document_language",
    "document_save",
    "document_update",
    "documents_bulk_create",
    "documents_embed",
    "documents_index_attempt",
    "documents_index_queue",
    "documents_mark_failed",
    "documents_reembed",
]
