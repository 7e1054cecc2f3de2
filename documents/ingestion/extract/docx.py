"""DOCX (Word OOXML) uploads: paragraphs, headings and tables in order."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Final

import docx
from docx.document import Document as DocxDocument
from docx.oxml.ns import qn
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph
from lxml.etree import _Element

from documents.ingestion.extract.common import (
    ExtractionError,
    RawExtraction,
    check_zip_bomb,
    short_reason,
    zip_member_names,
)
from documents.ingestion.extract.limits import DOCX_MAX_TABLE_DEPTH

__all__ = ["extract_docx", "looks_like_docx"]

logger = logging.getLogger(__name__)

_DOCX_MAIN_PART: Final = "word/document.xml"
_W_P: Final = qn("w:p")
_W_TBL: Final = qn("w:tbl")
_W_SDT: Final = qn("w:sdt")
_W_SDT_CONTENT: Final = qn("w:sdtContent")


def looks_like_docx(data: bytes, extension: str) -> bool:
    """Return True for a zip holding word/document.xml (sniffer).

    Raises:
        CorruptArchiveError: the data starts like a zip but cannot be opened.
    """
    names = zip_member_names(data)
    return names is not None and _DOCX_MAIN_PART in names


def extract_docx(data: bytes) -> RawExtraction:
    """Return (title, text) from a DOCX: paragraphs, headings and tables."""
    check_zip_bomb(data, label="DOCX")
    try:
        document = docx.Document(io.BytesIO(data))
        body = document.element.body
        blocks = list(_blocks(body, document, depth=0))
        title = document.core_properties.title or ""
        if not title.strip():
            title = _heading_title(document)
    except Exception as exc:  # python-docx/lxml raise many types
        logger.info("DOCX could not be read", exc_info=True)
        raise ExtractionError(f"corrupt or unreadable DOCX: {short_reason(exc)}") from exc
    return RawExtraction(title=title, text="\n\n".join(block for block in blocks if block.strip()))


def _blocks(element: _Element, parent: DocxDocument | _Cell, *, depth: int) -> Iterator[str]:
    """Yield paragraph texts and rendered tables in document order."""
    # Walk the XML rather than iter_inner_content() so that block-level content
    # controls (w:sdt: cover pages, tables of contents) are not silently lost.
    for child in element.iterchildren():
        if child.tag == _W_P:
            yield Paragraph(child, parent).text
        elif child.tag == _W_TBL and depth < DOCX_MAX_TABLE_DEPTH:
            yield _table_text(Table(child, parent), depth=depth)
        elif child.tag == _W_SDT and depth < DOCX_MAX_TABLE_DEPTH:
            content = child.find(_W_SDT_CONTENT)
            if content is not None:
                yield from _blocks(content, parent, depth=depth + 1)


def _table_text(table: Table, *, depth: int) -> str:
    """Render a table as one line per row with " | " between cells."""
    rows: list[str] = []
    for row in table.rows:
        seen: list[_Element] = []
        cells: list[str] = []
        for cell in row.cells:
            # Merged cells are returned once per grid column; keep one copy.
            if any(cell._tc is element for element in seen):
                continue
            seen.append(cell._tc)
            parts = _blocks(cell._tc, cell, depth=depth + 1)
            cell_text = " ".join(" ".join(part.split()) for part in parts)
            if cell_text.strip():
                cells.append(cell_text.strip())
        if cells:
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _heading_title(document: DocxDocument) -> str:
    """Return the first Title/Heading-styled paragraph, else ""."""
    for paragraph in document.paragraphs:
        style_name = getattr(paragraph.style, "name", "") or ""
        is_heading = style_name == "Title" or style_name.startswith("Heading")
        if is_heading and paragraph.text.strip():
            return paragraph.text
    return ""
