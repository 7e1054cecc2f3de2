"""Turn uploaded file bytes into normalised plain text for indexing.

The contract is one function, ``extract_text(data, *, filename, max_bytes)
-> ExtractedText``. Everything a user can upload ends up here, so every
failure is an :class:`ExtractionError` whose message is short enough to show
in the UI; parser exceptions are logged for operators and never escape.

Each format lives in its own module and exposes the same two functions,
listed in :data:`FORMATS`:

* a sniffer ``looks_like_x(data, extension) -> bool`` that recognises the
  format by content, so a mislabelled upload is read correctly or refused;
* an extractor ``extract_x(data) -> RawExtraction`` returning (title, text)
  or raising ExtractionError.

The dispatcher here picks the format, then normalises the text and chooses a
title the same way for all of them. Shared pieces: ``limits`` (every number),
``common`` (errors, normalisation, titles, the zip-bomb guard), ``decoding``
(bytes to str for the text formats, legacy Korean encodings included).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from documents.ingestion.extract.common import (
    ZIP_MAGIC,
    CorruptArchiveError,
    ExtractedText,
    ExtractionError,
    RawExtraction,
    basename,
    clean_title,
    first_line_title,
    format_mb,
    normalise_text,
    split_extension,
)
from documents.ingestion.extract.decoding import TextDecodeError
from documents.ingestion.extract.docx import extract_docx, looks_like_docx
from documents.ingestion.extract.html import extract_html, looks_like_html
from documents.ingestion.extract.hwp import HWP_EXTENSIONS, extract_hwp, looks_like_hwp
from documents.ingestion.extract.hwpx import HWPX_EXTENSIONS, extract_hwpx, looks_like_hwpx
from documents.ingestion.extract.limits import DEFAULT_MAX_BYTES
from documents.ingestion.extract.pdf import PDF_EXTENSIONS, extract_pdf, looks_like_pdf
from documents.ingestion.extract.text import extract_markdown, extract_plain_text

logger = logging.getLogger(__name__)

__all__ = [
    "FORMATS",
    "SUPPORTED_EXTENSIONS",
    "ExtractedText",
    "ExtractionError",
    "FileFormat",
    "RawExtraction",
    "extract_text",
]

Sniffer = Callable[[bytes, str], bool]
Extractor = Callable[[bytes], RawExtraction]


@dataclass(frozen=True, slots=True)
class FileFormat:
    """One row of the dispatch table: how a format is named, recognised and read."""

    #: ``Document.SourceType`` value stored with the text.
    source_type: str
    #: Name used in messages ("corrupt or unreadable DOCX: ...").
    label: str
    #: Lower-case extensions with the dot; the first one is shown in the
    #: "supported: ..." hint.
    extensions: tuple[str, ...]
    extract: Extractor
    #: Recognises the format by content, whatever the file is called. None
    #: for formats known by their extension only (plain text, Markdown).
    sniff: Sniffer | None = None
    #: Message when the name promises this format but the content is not it,
    #: so that, say, an HTML error page saved as "report.pdf" is not indexed
    #: as the report. None: the content decides silently.
    mismatch_error: str | None = None
    #: Container the format is built on; a corrupt one is then reported as a
    #: corrupt file of this format when the name claims it.
    container: Literal["zip"] | None = None
    #: Fall back to the first line of text as title (before the file stem).
    title_from_first_line: bool = False


#: The dispatch table. Sniffers run in this order, so binary formats (magic
#: bytes) come before HTML, which is recognised by its opening tag.
FORMATS: Final[tuple[FileFormat, ...]] = (
    FileFormat(
        source_type="pdf",
        label="PDF",
        extensions=PDF_EXTENSIONS,
        extract=extract_pdf,
        sniff=looks_like_pdf,
        mismatch_error="not a valid PDF: the file does not start with %PDF-",
        title_from_first_line=True,
    ),
    # HWPX before DOCX: both are zip archives, told apart by their members.
    FileFormat(
        source_type="hwp",
        label="HWPX",
        extensions=HWPX_EXTENSIONS,
        extract=extract_hwpx,
        sniff=looks_like_hwpx,
        mismatch_error="not a valid HWPX document: expected a Hangul (OWPML) archive",
        container="zip",
        title_from_first_line=True,
    ),
    FileFormat(
        source_type="docx",
        label="DOCX",
        extensions=(".docx",),
        extract=extract_docx,
        sniff=looks_like_docx,
        mismatch_error="not a valid DOCX document: expected a Word (OOXML) archive",
        container="zip",
    ),
    # HWP 5.0 is an OLE2 compound file; other OLE files (.doc) are not it.
    FileFormat(
        source_type="hwp",
        label="HWP",
        extensions=HWP_EXTENSIONS,
        extract=extract_hwp,
        sniff=looks_like_hwp,
        mismatch_error="not a valid HWP document: expected a Hangul HWP 5.0 file",
        title_from_first_line=True,
    ),
    FileFormat(
        source_type="html",
        label="HTML",
        extensions=(".html", ".htm"),
        extract=extract_html,
        sniff=looks_like_html,
    ),
    FileFormat(
        source_type="md",
        label="Markdown",
        extensions=(".md", ".markdown"),
        extract=extract_markdown,
    ),
    FileFormat(
        source_type="txt",
        label="text",
        extensions=(".txt",),
        extract=extract_plain_text,
        title_from_first_line=True,
    ),
    # CSV is indexed as plain text (Document.SourceType has no CSV); its
    # first line is a header row, so the file name makes the better title.
    FileFormat(
        source_type="txt",
        label="CSV",
        extensions=(".csv",),
        extract=extract_plain_text,
    ),
)

SUPPORTED_EXTENSIONS: Final = frozenset(ext for fmt in FORMATS for ext in fmt.extensions)

_BY_EXTENSION: Final = {ext: fmt for fmt in FORMATS for ext in fmt.extensions}
_SUPPORTED_HINT: Final = ", ".join(sorted(fmt.extensions[0] for fmt in FORMATS))


def extract_text(
    data: bytes, *, filename: str, max_bytes: int = DEFAULT_MAX_BYTES
) -> ExtractedText:
    """Extract normalised text and a title from an uploaded file.

    The type is decided from the content first and the extension second, so a
    mislabelled upload is either read correctly or rejected with a clear reason.

    Raises:
        ExtractionError: the file is empty, too large, unsupported, corrupt,
            encrypted, binary, or contains no text.
    """
    size = len(data)
    if size == 0:
        raise ExtractionError("empty file")
    if size > max_bytes:
        raise ExtractionError(
            f"file too large: {format_mb(size, round_up=True)} MB exceeds the "
            f"{format_mb(max_bytes)} MB limit"
        )

    name = basename(filename)
    stem, extension = split_extension(name)
    claimed = _BY_EXTENSION.get(extension)
    fmt = _detect_format(data, extension, claimed)
    try:
        raw = fmt.extract(data)
    except TextDecodeError:
        if claimed is None:
            # Sniffed as HTML by its first bytes but not text after all: for
            # an unknown extension that is just an unsupported file.
            raise ExtractionError(_unsupported_message(extension)) from None
        raise

    text = normalise_text(raw.text)
    if not text.strip():
        raise ExtractionError("no text found in file")
    title = (
        clean_title(raw.title)
        or (first_line_title(text) if fmt.title_from_first_line else "")
        or clean_title(stem)
        or "Untitled"
    )
    logger.debug("Extracted %d chars of %s from %r (title %r)", len(text), fmt.label, name, title)
    return ExtractedText(text=text, source_type=fmt.source_type, title=title)


def _detect_format(data: bytes, extension: str, claimed: FileFormat | None) -> FileFormat:
    """Return the format to read the upload as, or raise why there is none."""
    try:
        sniffed = next(
            (fmt for fmt in FORMATS if fmt.sniff is not None and fmt.sniff(data, extension)),
            None,
        )
    except CorruptArchiveError as exc:
        if claimed is not None and claimed.container == "zip":
            raise ExtractionError(f"corrupt or unreadable {claimed.label}: {exc.reason}") from exc
        raise
    if claimed is not None and claimed.mismatch_error is not None and sniffed is not claimed:
        raise ExtractionError(claimed.mismatch_error)
    if sniffed is not None:
        return sniffed
    if data.startswith(ZIP_MAGIC):
        raise ExtractionError("unsupported file type: ZIP archive")
    if claimed is None:
        # Only HTML is recognised by content among the text formats; anything
        # else with an unknown extension is refused without decoding errors
        # that would be confusing for, say, an .exe.
        raise ExtractionError(_unsupported_message(extension))
    return claimed


def _unsupported_message(extension: str) -> str:
    """Build the user-facing message for an unsupported extension."""
    shown = f"'{extension}'" if extension else "(no file extension)"
    return f"unsupported file type {shown} (supported: {_SUPPORTED_HINT})"
