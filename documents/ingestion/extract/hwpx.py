"""HWPX uploads (Hangul's OWPML zip format), and the text of any OWPML document.

Documents are read with python-hwpx (Apache-2.0; see NOTICE-python-hwpx),
which also converts HWP 5.0 files to the same model, so ``hwp`` reuses
:func:`read_owpml`. This module's own checks run first: the shared zip-bomb
guard, zip or ODF-manifest encryption (password-protected files), and the
parts a document must have.

Text comes out as the DOCX path writes it: paragraphs separated by a blank
line, line breaks and tabs inside a paragraph kept, a table as one line per
row with " | " between cells, and text boxes and captions where they sit.
Headers, footers, notes and memos are left out, as in Hancom's "save as
text". The walk is modelled on python-hwpx's ``hwpx.tools.exporter``, whose
plain-text export writes every table row as a separate paragraph instead.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
import zipfile
from collections.abc import Iterator
from typing import Final
from xml.etree.ElementTree import Element

from hwpx import HwpxDocument

from documents.ingestion.extract import limits
from documents.ingestion.extract.common import (
    CorruptArchiveError,
    ExtractionError,
    RawExtraction,
    check_zip_bomb,
    short_reason,
    zip_member_names,
)

__all__ = ["HWPX_EXTENSIONS", "extract_hwpx", "looks_like_hwpx", "read_owpml"]

logger = logging.getLogger(__name__)

HWPX_EXTENSIONS: Final = (".hwpx",)
HWPX_MIMETYPE: Final = b"application/hwp+zip"

_MIMETYPE_MEMBER: Final = "mimetype"
_MANIFEST_MEMBER: Final = "META-INF/manifest.xml"
_SECTION_RE: Final = re.compile(r"Contents/section\d+\.xml")
# An ODF manifest entry that says a part is encrypted, whatever its prefix.
_ENCRYPTION_DATA_RE: Final = re.compile(rb"<(?:[\w.-]+:)?encryption-data\b")
_ZIP_FLAG_ENCRYPTED: Final = 0x1

_HP: Final = "{http://www.hancom.co.kr/hwpml/2011/paragraph}"
_P: Final = f"{_HP}p"
_RUN: Final = f"{_HP}run"
_T: Final = f"{_HP}t"
_TBL: Final = f"{_HP}tbl"
_SWITCH: Final = f"{_HP}switch"
_DUTMAL: Final = f"{_HP}dutmal"
_CELL_PARAGRAPHS: Final = f"{_HP}subList/{_HP}p"
#: Inline characters, as run children or inside hp:t.
_INLINE_TEXT: Final = {
    f"{_HP}tab": "\t",
    f"{_HP}lineBreak": "\n",
    f"{_HP}nbSpace": "\u00a0",
    f"{_HP}fwSpace": "\u3000",
    f"{_HP}hyphen": "",
}
#: Text boxes and captions: their paragraphs are read where they sit.
_TEXT_BOXES: Final = frozenset((f"{_HP}drawText", f"{_HP}caption"))
#: Text that is not body text: headers, footers, notes, memos, comments.
_NOT_BODY: Final = frozenset(
    f"{_HP}{name}"
    for name in ("header", "footer", "footNote", "endNote", "fieldBegin", "hiddenComment")
)


def looks_like_hwpx(data: bytes, extension: str) -> bool:
    """Return True for a zip whose ``mimetype`` member is HWPX's (sniffer).

    Raises:
        CorruptArchiveError: the data starts like a zip but cannot be opened.
    """
    names = zip_member_names(data)
    if names is None or _MIMETYPE_MEMBER not in names:
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if archive.getinfo(_MIMETYPE_MEMBER).flag_bits & _ZIP_FLAG_ENCRYPTED:
                # Unreadable without the password: the layout decides, and the
                # extractor refuses the file as encrypted.
                return any(_SECTION_RE.fullmatch(name) for name in names)
            with archive.open(_MIMETYPE_MEMBER) as member:
                # Bounded read: a deflated "mimetype" could be a bomb too.
                declared = member.read(len(HWPX_MIMETYPE) + 64)
    except Exception as exc:  # zipfile raises BadZipFile, NotImplementedError, ...
        raise CorruptArchiveError(short_reason(exc)) from exc
    return declared.strip() == HWPX_MIMETYPE


def extract_hwpx(data: bytes) -> RawExtraction:
    """Return (title, text) from an HWPX document, refusing protected files."""
    check_zip_bomb(data, label="HWPX")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            _refuse_unreadable(archive)
    except ExtractionError:
        raise
    except Exception as exc:  # zipfile raises many types
        logger.info("HWPX could not be read", exc_info=True)
        raise ExtractionError(f"corrupt or unreadable HWPX: {short_reason(exc)}") from exc
    return read_owpml(data, label="HWPX")


def _refuse_unreadable(archive: zipfile.ZipFile) -> None:
    """Raise for an archive with too many parts, encryption or no body."""
    infos = archive.infolist()
    if len(infos) > limits.HWPX_MAX_MEMBERS:
        raise ExtractionError("HWPX archive has too many parts (possible zip bomb)")
    names = {info.filename for info in infos}
    # Zip-level (traditional PKWARE) encryption, or Hancom's password
    # protection, which lists ODF encryption-data for the encrypted parts.
    encrypted = any(info.flag_bits & _ZIP_FLAG_ENCRYPTED for info in infos) or (
        _MANIFEST_MEMBER in names
        and _ENCRYPTION_DATA_RE.search(archive.read(_MANIFEST_MEMBER)) is not None
    )
    if encrypted:
        raise ExtractionError("encrypted or password-protected HWPX document")
    if not any(_SECTION_RE.fullmatch(name) for name in names):
        raise ExtractionError("corrupt or unreadable HWPX: no Contents/section0.xml")


def read_owpml(data: bytes, *, label: str) -> RawExtraction:
    """Open an HWPX or HWP 5.0 file with python-hwpx; return its title and text.

    Call only after the format's own checks: python-hwpx has limits of its
    own, but they are looser than this project's.
    """
    try:
        # catch_warnings is process-wide before Python 3.14; the gunicorn
        # sync and Celery prefork workers read one upload at a time.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with HwpxDocument.open(data) as document:
                blocks = [
                    block
                    for section in document.sections
                    for paragraph in section.element.findall(_P)
                    for block in _paragraph_blocks(paragraph, depth=0)
                ]
                metadata = document.parts.metadata
    except Exception as exc:  # python-hwpx raises Hwp5Error, HwpxError, lxml errors, ...
        logger.info("%s could not be read", label, exc_info=True)
        raise ExtractionError(f"corrupt or unreadable {label}: {short_reason(exc)}") from exc
    for warning in caught:
        # Charts, OLE objects and the like that the model does not carry.
        logger.info("%s conversion: %s", label, warning.message)
    text = "\n\n".join(block for block in blocks if block.strip())
    if not text:
        raise ExtractionError(f"{label} document contains no text")
    title = (metadata.title if metadata is not None else None) or ""
    return RawExtraction(title=title, text=text)


def _paragraph_blocks(paragraph: Element, *, depth: int) -> Iterator[str]:
    """Yield a paragraph's text, split where a table or text box sits in it."""
    pieces: list[str] = []
    for run in paragraph.findall(_RUN):
        for child in run:
            if child.tag == _T:
                pieces.append(_t_text(child))
            elif child.tag in _INLINE_TEXT:
                pieces.append(_INLINE_TEXT[child.tag])
            elif child.tag == _DUTMAL:  # 덧말: the main text, without its ruby
                pieces.append(child.findtext(f"{_HP}mainText") or "")
            else:
                for block in _placed_blocks(child):
                    yield "".join(pieces)
                    pieces.clear()
                    yield from _block_text(block, depth=depth)
    yield "".join(pieces)


def _t_text(element: Element) -> str:
    """Return the text of an hp:t, with the tabs and breaks marked up inside it."""
    parts = [element.text or ""]
    for child in element:
        if child.tag in _INLINE_TEXT:
            parts.append(_INLINE_TEXT[child.tag])
        elif isinstance(child.tag, str):  # not a comment or processing instruction
            parts.append("".join(child.itertext()))
        parts.append(child.tail or "")
    return "".join(parts)


def _placed_blocks(element: Element) -> list[Element]:
    """Return the tables and text boxes in a run child, outermost first."""
    if element.tag in _NOT_BODY:
        return []
    if element.tag == _SWITCH:
        # The same object twice, for different readers: read one branch.
        branch = element.find(f"{_HP}case")
        if branch is None:
            branch = element.find(f"{_HP}default")
        return [] if branch is None else _placed_blocks(branch)
    if element.tag == _TBL:
        return [element, *element.findall(f"{_HP}caption")]  # caption after the table
    if element.tag in _TEXT_BOXES:
        return [element]
    return [block for child in element for block in _placed_blocks(child)]


def _block_text(block: Element, *, depth: int) -> Iterator[str]:
    """Yield a table as one block, or a text box's paragraphs."""
    if depth >= limits.HWPX_MAX_NESTING_DEPTH:
        return
    if block.tag == _TBL:
        yield _table_text(block, depth=depth)
        return
    for paragraph in block.findall(_CELL_PARAGRAPHS):
        yield from _paragraph_blocks(paragraph, depth=depth + 1)


def _table_text(table: Element, *, depth: int) -> str:
    """Render a table as one line per row with " | " between cells (as DOCX)."""
    rows: list[str] = []
    for row in table.findall(f"{_HP}tr"):
        cells: list[str] = []
        for cell in row.findall(f"{_HP}tc"):
            parts = (
                block
                for paragraph in cell.findall(_CELL_PARAGRAPHS)
                for block in _paragraph_blocks(paragraph, depth=depth + 1)
            )
            cell_text = " ".join(" ".join(part.split()) for part in parts if part.strip())
            if cell_text:
                cells.append(cell_text)
        if cells:
            rows.append(" | ".join(cells))
    return "\n".join(rows)
