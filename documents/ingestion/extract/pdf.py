"""PDF uploads: the text layer of every page, via pypdf."""

from __future__ import annotations

import io
import logging
from typing import Final

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

from documents.ingestion.extract.common import ExtractionError, RawExtraction, short_reason
from documents.ingestion.extract.limits import PDF_HEADER_WINDOW

__all__ = ["PDF_EXTENSIONS", "extract_pdf", "looks_like_pdf"]

logger = logging.getLogger(__name__)

PDF_EXTENSIONS: Final = (".pdf",)


def looks_like_pdf(data: bytes, extension: str) -> bool:
    """Return True for a PDF header (sniffer); a .pdf may have junk before it."""
    if data.startswith(b"%PDF-"):
        return True
    return extension in PDF_EXTENSIONS and b"%PDF-" in data[:PDF_HEADER_WINDOW]


def extract_pdf(data: bytes) -> RawExtraction:
    """Return (title, text) from a PDF, page texts separated by blank lines."""
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            # Many "protected" PDFs only set an owner password (restricting
            # printing/editing) and open with an empty user password.
            try:
                decrypted = reader.decrypt("")
            except DependencyError as exc:
                # AES needs the optional "cryptography" package.
                logger.warning("Cannot decrypt PDF: %s", exc)
                raise ExtractionError("encrypted PDF (unsupported encryption method)") from exc
            if decrypted == PasswordType.NOT_DECRYPTED:
                raise ExtractionError("encrypted PDF (password required)")
        pages = reader.pages
        page_count = len(pages)
    except ExtractionError:
        raise
    except FileNotDecryptedError as exc:
        raise ExtractionError("encrypted PDF (password required)") from exc
    except Exception as exc:  # pypdf raises many exception types
        logger.info("PDF could not be opened", exc_info=True)
        raise ExtractionError(f"corrupt or unreadable PDF: {short_reason(exc)}") from exc

    page_texts: list[str] = []
    first_error: Exception | None = None
    for index in range(page_count):
        # One damaged page should not cost the user the rest of the document.
        try:
            page_text = pages[index].extract_text() or ""
        except Exception as exc:  # see above
            logger.info("PDF page %d failed to extract", index + 1, exc_info=True)
            first_error = first_error or exc
            continue
        if page_text.strip():
            page_texts.append(page_text)

    if not page_texts:
        if first_error is not None:
            raise ExtractionError(f"corrupt or unreadable PDF: {short_reason(first_error)}")
        raise ExtractionError("PDF has no extractable text (scanned image?)")
    return RawExtraction(title=_metadata_title(reader), text="\n\n".join(page_texts))


def _metadata_title(reader: PdfReader) -> str:
    """Return the document-info title, or "" when missing or unreadable."""
    try:
        metadata = reader.metadata
        title = metadata.title if metadata is not None else None
    except Exception:  # broken metadata is not worth failing on
        logger.debug("PDF metadata unreadable", exc_info=True)
        return ""
    return title if isinstance(title, str) else ""
