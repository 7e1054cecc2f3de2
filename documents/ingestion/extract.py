"""Turn uploaded file bytes into normalised plain text for indexing.

Everything a user can upload ends up here, so every failure is reported as an
:class:`ExtractionError` whose message is short enough to show in the UI.
Parser exceptions are logged for operators and never escape as tracebacks.
"""

from __future__ import annotations

import codecs
import io
import logging
import math
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import docx
from bs4 import BeautifulSoup
from bs4.element import (
    CData,
    NavigableString,
    PreformattedString,
    Script,
    Stylesheet,
    Tag,
    TemplateString,
)
from docx.document import Document as DocxDocument
from docx.oxml.ns import qn
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph
from lxml.etree import _Element
from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_DOCX_COMPRESSION_RATIO",
    "MAX_DOCX_UNCOMPRESSED_BYTES",
    "SUPPORTED_EXTENSIONS",
    "ExtractedText",
    "ExtractionError",
    "extract_text",
]

SUPPORTED_EXTENSIONS: Final = frozenset(
    {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"}
)

# Zip-bomb guards for DOCX. Module constants (not parameters) so that tests can
# monkeypatch them without widening the public signature of extract_text.
MAX_DOCX_UNCOMPRESSED_BYTES: Final = 100 * 1024 * 1024
MAX_DOCX_COMPRESSION_RATIO: Final = 100
# Below this size a high ratio is harmless (a tiny, very repetitive document),
# so the ratio check only applies once the archive expands to at least this.
_DOCX_RATIO_MIN_BYTES: Final = 1024 * 1024

_TITLE_MAX_CHARS: Final = 200
_ERROR_REASON_MAX_CHARS: Final = 120
# Share of control or undecodable characters above which "text" is binary.
_BINARY_THRESHOLD: Final = 0.10
# Leading bytes searched for a PDF header when the name already says .pdf;
# readers tolerate some junk before "%PDF-" and so do we.
_PDF_HEADER_WINDOW: Final = 1024
# How far into a text file to look for an HTML start tag (past comments/BOM).
_HTML_SNIFF_WINDOW: Final = 4096
# Guard against pathological nesting of tables inside table cells.
_DOCX_MAX_TABLE_DEPTH: Final = 20

_SUPPORTED_HINT: Final = ".docx, .html, .md, .pdf, .txt"
_EXTENSION_TYPES: Final = {
    ".txt": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
}

_ZIP_MAGIC: Final = (b"PK\x03\x04", b"PK\x05\x06")
_DOCX_MAIN_PART: Final = "word/document.xml"
_W_P: Final = qn("w:p")
_W_TBL: Final = qn("w:tbl")
_W_SDT: Final = qn("w:sdt")
_W_SDT_CONTENT: Final = qn("w:sdtContent")

# Control characters that plain text legitimately contains.
_TEXT_CONTROLS: Final = frozenset("\t\n\r\f\v")
_CONTROL_CHARS: Final = frozenset(
    [chr(c) for c in range(0x20) if chr(c) not in _TEXT_CONTROLS] + ["\x7f"]
)
# str.translate table used by normalisation: page breaks become line breaks
# (so words on either side do not fuse) and other controls are dropped.
_NORMALISE_TABLE: Final = {ord(c): None for c in _CONTROL_CHARS} | {
    ord("\f"): "\n",
    ord("\v"): "\n",
}
_CONTROL_DELETE_TABLE: Final = {ord(c): None for c in _CONTROL_CHARS}
_BLANK_RUN_RE: Final = re.compile(r"\n{3,}")
_WHITESPACE_RE: Final = re.compile(r"\s+")

_HTML_SKIP_TAGS: Final = frozenset({"script", "style", "noscript", "template", "title"})
_HTML_BLOCK_TAGS: Final = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "caption",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "head",
        "header",
        "hgroup",
        "hr",
        "html",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "ul",
    }
)
_HTML_CELL_TAGS: Final = frozenset({"td", "th"})
_HTML_START_TAGS: Final = ("<!doctype html", "<html", "<head", "<body")


class ExtractionError(ValueError):
    """Raised with a short user-facing reason the file could not be read."""


@dataclass(frozen=True, slots=True)
class ExtractedText:
    """Normalised text pulled out of one uploaded file."""

    text: str
    source_type: str
    title: str


def extract_text(data: bytes, *, filename: str, max_bytes: int = 10 * 1024 * 1024) -> ExtractedText:
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
            f"file too large: {_format_mb(size, round_up=True)} MB exceeds the "
            f"{_format_mb(max_bytes)} MB limit"
        )

    name = _basename(filename)
    stem, extension = _split_extension(name)
    kind = _sniff_binary_kind(data, extension)

    # A name that promises a binary format must deliver it; otherwise an HTML
    # error page saved as "report.pdf" would be indexed as if it were the report.
    if extension == ".pdf" and kind != "pdf":
        raise ExtractionError("not a valid PDF: the file does not start with %PDF-")
    if extension == ".docx" and kind != "docx":
        raise ExtractionError("not a valid DOCX document: expected a Word (OOXML) archive")

    if kind == "pdf":
        text, title = _extract_pdf(data)
    elif kind == "docx":
        text, title = _extract_docx(data)
    elif kind == "zip":
        raise ExtractionError("unsupported file type: ZIP archive")
    else:
        kind, text, title = _extract_text_like(data, extension)

    text = _normalise_text(text)
    if not text.strip():
        raise ExtractionError("no text found in file")
    title = _clean_title(title) or _first_line_title(text, kind) or _clean_title(stem) or "Untitled"
    logger.debug("Extracted %d chars of %s from %r (title %r)", len(text), kind, name, title)
    return ExtractedText(text=text, source_type=kind, title=title)


def _normalise_text(text: str) -> str:
    """Normalise newlines, drop control characters and squeeze blank lines.

    ``\\r\\n`` and lone ``\\r`` become ``\\n``, form feeds become line breaks,
    other C0 controls and DEL are removed, trailing whitespace is stripped from
    every line and runs of blank lines collapse to a single blank line. Linear
    time: a multi-megabyte single line is fine.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.translate(_NORMALISE_TABLE)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = _BLANK_RUN_RE.sub("\n\n", text)
    # A leading BOM survives decoding only when it was doubled; it is noise.
    return text.lstrip("\ufeff").strip("\n")


# --------------------------------------------------------------------------
# Type detection


def _basename(filename: str) -> str:
    """Return the last path component, accepting both / and \\ separators."""
    # Browsers on Windows have been known to send the full client path.
    return re.split(r"[\\/]", filename)[-1].strip()


def _split_extension(name: str) -> tuple[str, str]:
    """Split a file name into (stem, lower-cased extension incl. the dot)."""
    dot = name.rfind(".")
    if dot <= 0:  # "README" or ".bashrc": no extension
        return name, ""
    return name[:dot], name[dot:].lower()


def _sniff_binary_kind(data: bytes, extension: str) -> str | None:
    """Return "pdf", "docx" or "zip" from magic bytes, else None (text-like)."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if extension == ".pdf" and b"%PDF-" in data[:_PDF_HEADER_WINDOW]:
        return "pdf"
    if data.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except Exception as exc:  # zipfile raises BadZipFile, NotImplementedError, ...
            if extension == ".docx":
                raise ExtractionError(f"corrupt or unreadable DOCX: {_short_reason(exc)}") from exc
            raise ExtractionError("unsupported file type: ZIP archive (corrupt)") from exc
        return "docx" if _DOCX_MAIN_PART in names else "zip"
    return None


def _looks_like_html(text: str) -> bool:
    """Return True when the text opens like an HTML document."""
    head = text[:_HTML_SNIFF_WINDOW].lstrip("\ufeff \t\r\n\f\v").lower()
    # Skip an XML prolog and leading comments, which often precede <!doctype>.
    while True:
        if head.startswith("<?xml"):
            terminator = "?>"
        elif head.startswith("<!--"):
            terminator = "-->"
        else:
            break
        end = head.find(terminator)
        if end < 0:
            return False
        head = head[end + len(terminator) :].lstrip(" \t\r\n\f\v")
    for tag in _HTML_START_TAGS:
        if head.startswith(tag):
            following = head[len(tag) : len(tag) + 1]
            # "<header>" must not count as "<head"; "<html>" and "<html lang"
            # both do.
            if following in {"", ">", "/"} or following.isspace():
                return True
    return False


# --------------------------------------------------------------------------
# Plain text, Markdown and HTML


def _extract_text_like(data: bytes, extension: str) -> tuple[str, str, str]:
    """Decode a text upload and return (kind, text, title)."""
    ext_kind = _EXTENSION_TYPES.get(extension)
    if ext_kind is None:
        # Only HTML is recognised by content among the text formats; anything
        # else with an unknown extension is rejected without decoding errors
        # that would be confusing for, say, an .exe.
        try:
            text = _decode_text(data)
        except ExtractionError:
            text = ""
        if not _looks_like_html(text):
            raise ExtractionError(_unsupported_message(extension))
        return ("html", *_extract_html(text))

    text = _decode_text(data)
    if _looks_like_html(text):
        return ("html", *_extract_html(text))
    if ext_kind == "html":
        # Fragments without <html> are still HTML if the name says so.
        return ("html", *_extract_html(text))
    if ext_kind == "md":
        return "md", text, _markdown_title(text)
    return "txt", text, ""


def _unsupported_message(extension: str) -> str:
    """Build the user-facing message for an unsupported extension."""
    shown = f"'{extension}'" if extension else "(no file extension)"
    return f"unsupported file type {shown} (supported: {_SUPPORTED_HINT})"


def _decode_text(data: bytes) -> str:
    """Decode UTF-8 (BOM optional) or BOM-marked UTF-16, rejecting binary data."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ExtractionError(
                f"not valid UTF-16 text (invalid data at offset {exc.start})"
            ) from exc
        # UTF-16 bytes are full of NULs, so judge the decoded characters.
        if "\x00" in text or _control_ratio(text) > _BINARY_THRESHOLD:
            raise ExtractionError("binary content, not text")
        return text

    if b"\x00" in data:
        raise ExtractionError("binary content, not text")
    body = data[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data
    try:
        return _check_not_binary(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        # Decide between "binary junk" and "text in a legacy encoding" by how
        # much of it is undecodable; we deliberately do not guess encodings.
        lenient = body.decode("utf-8", errors="replace")
        if _control_ratio(lenient, count_replacement=True) > _BINARY_THRESHOLD:
            raise ExtractionError("binary content, not text") from exc
        offset = exc.start + (len(data) - len(body))  # report in file terms
        raise ExtractionError(
            f"not valid UTF-8 text (invalid byte 0x{body[exc.start]:02x} at offset {offset})"
        ) from exc


def _check_not_binary(text: str) -> str:
    """Return text unchanged unless it is mostly control characters."""
    if _control_ratio(text) > _BINARY_THRESHOLD:
        raise ExtractionError("binary content, not text")
    return text


def _control_ratio(text: str, *, count_replacement: bool = False) -> float:
    """Return the share of characters that are controls (or U+FFFD if asked)."""
    if not text:
        return 0.0
    # translate() deletes in C, which keeps this linear and fast on big files.
    bad = len(text) - len(text.translate(_CONTROL_DELETE_TABLE))
    if count_replacement:
        bad += text.count("\ufffd")
    return bad / len(text)


def _markdown_title(text: str) -> str:
    """Return the first ATX "# " heading outside fenced code, else ""."""
    in_fence = False
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        # CommonMark allows up to three spaces before the hashes.
        if len(line) - len(line.lstrip(" ")) <= 3 and stripped.startswith("# "):
            title = stripped[2:].strip()
            # An optional closing "###" only counts after a space ("# C#" stays).
            without_closing = title.rstrip("#")
            if without_closing != title and (not without_closing or without_closing[-1] == " "):
                title = without_closing.strip()
            return title
    return ""


class _HtmlTextBuilder:
    """Collect HTML text into paragraphs, line breaks and table rows."""

    __slots__ = (
        "_cell_pending",
        "_line_has_text",
        "_paragraphs",
        "_pieces",
        "_pre_depth",
        "_saw_pre",
    )

    def __init__(self) -> None:
        self._paragraphs: list[str] = []
        self._pieces: list[str] = []
        self._pre_depth = 0
        self._saw_pre = False
        self._line_has_text = False
        self._cell_pending = False

    def text(self, value: str) -> None:
        """Add a text node, keeping whitespace only inside <pre>."""
        if self._cell_pending and value.strip():
            # The separator goes in lazily so empty cells and the first cell
            # of a row do not leave stray " | " at the line ends.
            if self._line_has_text:
                self._pieces.append(" | ")
            self._cell_pending = False
        if self._pre_depth:
            self._saw_pre = True
            self._pieces.append(value)
        else:
            self._pieces.append(_WHITESPACE_RE.sub(" ", value))
        if value.strip():
            self._line_has_text = True

    def line_break(self) -> None:
        """Start a new line within the current paragraph (<br>)."""
        self._pieces.append("\n")
        self._line_has_text = False
        self._cell_pending = False

    def cell_break(self) -> None:
        """Mark the start of a table cell."""
        self._cell_pending = True

    def enter_pre(self) -> None:
        """Start preserving whitespace."""
        self.paragraph_break()
        self._pre_depth += 1

    def exit_pre(self) -> None:
        """Stop preserving whitespace once the outermost <pre> closes."""
        self.paragraph_break()
        self._pre_depth = max(0, self._pre_depth - 1)

    def paragraph_break(self) -> None:
        """Finish the current paragraph, if it has any text."""
        self._line_has_text = False
        self._cell_pending = False
        if not self._pieces:
            return
        raw = "".join(self._pieces)
        self._pieces.clear()
        if self._saw_pre:
            lines = [line.rstrip() for line in raw.split("\n")]
            paragraph = "\n".join(lines).strip("\n")
            self._saw_pre = False
        else:
            lines = [" ".join(line.split()) for line in raw.split("\n")]
            paragraph = "\n".join(line for line in lines if line)
        if paragraph.strip():
            self._paragraphs.append(paragraph)

    def result(self) -> str:
        """Return all paragraphs separated by blank lines."""
        self.paragraph_break()
        return "\n\n".join(self._paragraphs)


def _extract_html(markup: str) -> tuple[str, str]:
    """Return (text, title) from an HTML document."""
    try:
        soup = BeautifulSoup(markup, "html.parser")
    except Exception as exc:  # parser bugs must not escape
        logger.info("HTML parsing failed", exc_info=True)
        raise ExtractionError(f"unreadable HTML: {_short_reason(exc)}") from exc

    title = ""
    title_tag = soup.find("title")
    if isinstance(title_tag, Tag):
        title = title_tag.get_text(" ")
    if not title.strip():
        h1 = soup.find("h1")
        if isinstance(h1, Tag):
            title = _visible_text(h1)

    builder = _HtmlTextBuilder()
    # Iterative walk with explicit enter/exit events: deep nesting in hostile
    # HTML must not hit the recursion limit or cost more than linear time.
    stack: list[tuple[Tag, Iterator[object]]] = [(soup, iter(soup.contents))]
    while stack:
        parent, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            _html_exit(parent, builder)
            continue
        if isinstance(child, Tag):
            if child.name in _HTML_SKIP_TAGS:
                continue
            _html_enter(child, builder)
            stack.append((child, iter(child.contents)))
        elif _is_visible_string(child):
            builder.text(str(child))
    return builder.result(), title


def _html_enter(tag: Tag, builder: _HtmlTextBuilder) -> None:
    """Emit the layout event for an opening tag."""
    name = tag.name
    if name in {"br", "tr"}:
        builder.line_break()
    elif name == "pre":
        builder.enter_pre()
    elif name in _HTML_CELL_TAGS:
        builder.cell_break()
    elif name in _HTML_BLOCK_TAGS:
        builder.paragraph_break()


def _html_exit(tag: Tag, builder: _HtmlTextBuilder) -> None:
    """Emit the layout event for a closing tag."""
    if tag.name == "pre":
        builder.exit_pre()
    elif tag.name in _HTML_BLOCK_TAGS:
        builder.paragraph_break()


def _is_visible_string(node: object) -> bool:
    """Return True for text nodes a reader would see (no comments, scripts)."""
    if not isinstance(node, NavigableString):
        return False
    if isinstance(node, PreformattedString):
        return isinstance(node, CData)
    return not isinstance(node, Script | Stylesheet | TemplateString)


def _visible_text(tag: Tag) -> str:
    """Return the visible text of one element, ignoring scripts and comments."""
    return "".join(str(node) for node in tag.descendants if _is_visible_string(node))


# --------------------------------------------------------------------------
# PDF


def _extract_pdf(data: bytes) -> tuple[str, str]:
    """Return (text, title) from a PDF, page texts separated by blank lines."""
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
        raise ExtractionError(f"corrupt or unreadable PDF: {_short_reason(exc)}") from exc

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
            raise ExtractionError(f"corrupt or unreadable PDF: {_short_reason(first_error)}")
        raise ExtractionError("PDF has no extractable text (scanned image?)")
    return "\n\n".join(page_texts), _pdf_metadata_title(reader)


def _pdf_metadata_title(reader: PdfReader) -> str:
    """Return the document-info title, or "" when missing or unreadable."""
    try:
        metadata = reader.metadata
        title = metadata.title if metadata is not None else None
    except Exception:  # broken metadata is not worth failing on
        logger.debug("PDF metadata unreadable", exc_info=True)
        return ""
    return title if isinstance(title, str) else ""


# --------------------------------------------------------------------------
# DOCX


def _check_zip_bomb(data: bytes) -> None:
    """Reject archives that would expand to an unreasonable size."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except Exception as exc:  # zipfile raises BadZipFile, NotImplementedError, ...
        raise ExtractionError(f"corrupt or unreadable DOCX: {_short_reason(exc)}") from exc
    # Declared sizes can be trusted as an upper bound: zipfile stops reading a
    # member at its declared size and then fails the CRC check.
    uncompressed = sum(info.file_size for info in infos)
    compressed = sum(info.compress_size for info in infos)
    ratio = uncompressed / max(compressed, 1)
    too_big = uncompressed > MAX_DOCX_UNCOMPRESSED_BYTES
    too_dense = uncompressed >= _DOCX_RATIO_MIN_BYTES and ratio > MAX_DOCX_COMPRESSION_RATIO
    if too_big or too_dense:
        logger.warning(
            "Rejected DOCX: %d bytes uncompressed from %d (ratio %.0f)",
            uncompressed,
            compressed,
            ratio,
        )
        raise ExtractionError("archive too large when uncompressed (possible zip bomb)")


def _extract_docx(data: bytes) -> tuple[str, str]:
    """Return (text, title) from a DOCX: paragraphs, headings and tables."""
    _check_zip_bomb(data)
    try:
        document = docx.Document(io.BytesIO(data))
        body = document.element.body
        blocks = list(_docx_blocks(body, document, depth=0))
        title = document.core_properties.title or ""
        if not title.strip():
            title = _docx_heading_title(document)
    except Exception as exc:  # python-docx/lxml raise many types
        logger.info("DOCX could not be read", exc_info=True)
        raise ExtractionError(f"corrupt or unreadable DOCX: {_short_reason(exc)}") from exc
    return "\n\n".join(block for block in blocks if block.strip()), title


def _docx_blocks(element: _Element, parent: DocxDocument | _Cell, *, depth: int) -> Iterator[str]:
    """Yield paragraph texts and rendered tables in document order."""
    # Walk the XML rather than iter_inner_content() so that block-level content
    # controls (w:sdt: cover pages, tables of contents) are not silently lost.
    for child in element.iterchildren():
        if child.tag == _W_P:
            yield Paragraph(child, parent).text
        elif child.tag == _W_TBL and depth < _DOCX_MAX_TABLE_DEPTH:
            yield _docx_table_text(Table(child, parent), depth=depth)
        elif child.tag == _W_SDT and depth < _DOCX_MAX_TABLE_DEPTH:
            content = child.find(_W_SDT_CONTENT)
            if content is not None:
                yield from _docx_blocks(content, parent, depth=depth + 1)


def _docx_table_text(table: Table, *, depth: int) -> str:
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
            parts = _docx_blocks(cell._tc, cell, depth=depth + 1)
            cell_text = " ".join(" ".join(part.split()) for part in parts)
            if cell_text.strip():
                cells.append(cell_text.strip())
        if cells:
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _docx_heading_title(document: DocxDocument) -> str:
    """Return the first Title/Heading-styled paragraph, else ""."""
    for paragraph in document.paragraphs:
        style_name = getattr(paragraph.style, "name", "") or ""
        is_heading = style_name == "Title" or style_name.startswith("Heading")
        if is_heading and paragraph.text.strip():
            return paragraph.text
    return ""


# --------------------------------------------------------------------------
# Helpers


def _clean_title(title: str) -> str:
    """Collapse whitespace and cap the length of a title candidate."""
    return " ".join(title.split())[:_TITLE_MAX_CHARS].strip()


def _first_line_title(text: str, kind: str) -> str:
    """Use the first non-empty line as title for txt and pdf documents."""
    if kind not in {"txt", "pdf"}:
        return ""
    # Bounded scan: a 5 MB single line only costs one slice of it.
    for line in text.split("\n", 50):
        cleaned = _clean_title(line[: _TITLE_MAX_CHARS * 4])
        if cleaned:
            return cleaned
    return ""


def _format_mb(size: int, *, round_up: bool = False) -> str:
    """Format a byte count as megabytes with one decimal."""
    value = size / (1024 * 1024)
    if round_up:
        # Never print "10.0 MB exceeds the 10.0 MB limit" for 10 MB + 1 byte.
        value = math.ceil(value * 10) / 10
    return f"{value:.1f}"


def _short_reason(exc: BaseException) -> str:
    """Return a one-line, length-capped description of an exception."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    reason = message or type(exc).__name__
    if len(reason) > _ERROR_REASON_MAX_CHARS:
        reason = reason[: _ERROR_REASON_MAX_CHARS - 1] + "…"
    return reason
