"""Text extraction and chunking for uploaded documents (no Django imports)."""

from __future__ import annotations

from documents.ingestion.chunking import TextChunk, TokenCounter, chunk_text, split_sentences
from documents.ingestion.extract import (
    SUPPORTED_EXTENSIONS,
    ExtractedText,
    ExtractionError,
    extract_text,
)

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "ExtractedText",
    "ExtractionError",
    "TextChunk",
    "TokenCounter",
    "chunk_text",
    "extract_text",
    "split_sentences",
]
