"""Writes on documents: creation, ingestion and the embedding pipeline."""

from documents.services.embed import (
    document_embed,
    document_mark_failed,
    documents_embed,
    documents_reembed,
)
from documents.services.ingest import (
    ImportOutcome,
    IngestResult,
    document_create,
    document_ingest_bytes,
)

__all__ = [
    "ImportOutcome",
    "IngestResult",
    "document_create",
    "document_embed",
    "document_ingest_bytes",
    "document_mark_failed",
    "documents_embed",
    "documents_reembed",
]
