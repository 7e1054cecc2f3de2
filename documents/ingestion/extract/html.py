"""HTML uploads: visible text in reading order, titled by <title> or <h1>.

The walk over the parse tree is iterative and emits layout events (paragraph,
line and cell breaks), so hostile nesting costs linear time and no recursion.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Final

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

from documents.ingestion.extract.common import ExtractionError, RawExtraction, short_reason
from documents.ingestion.extract.decoding import codec_for_label, decode_text, peek_text
from documents.ingestion.extract.limits import HTML_SNIFF_WINDOW

__all__ = ["declared_charset", "extract_html", "looks_like_html"]

logger = logging.getLogger(__name__)

_WHITESPACE_RE: Final = re.compile(r"\s+")
# <meta charset="euc-kr"> and <meta http-equiv="Content-Type"
# content="text/html; charset=euc-kr">, found by the byte prescan browsers do.
_META_CHARSET_RE: Final = re.compile(
    rb"""<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([a-z0-9_.:-]+)""", re.IGNORECASE
)
_HTML_START_TAGS: Final = ("<!doctype html", "<html", "<head", "<body")
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


def looks_like_html(data: bytes, extension: str) -> bool:
    """Return True when the upload opens like an HTML document (sniffer)."""
    head = peek_text(data, chars=HTML_SNIFF_WINDOW).lstrip("\ufeff \t\r\n\f\v").lower()
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


def declared_charset(data: bytes) -> str | None:
    """Return the Python codec a <meta> tag near the top declares, else None."""
    match = _META_CHARSET_RE.search(data[:HTML_SNIFF_WINDOW])
    return codec_for_label(match.group(1).decode("ascii")) if match else None


def extract_html(data: bytes) -> RawExtraction:
    """Return (title, text) from an HTML upload in UTF-8, its declared or a Korean encoding."""
    return _parse_html(decode_text(data, declared_encoding=declared_charset(data)))


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


def _parse_html(markup: str) -> RawExtraction:
    """Return (title, text) from decoded HTML."""
    try:
        soup = BeautifulSoup(markup, "html.parser")
    except Exception as exc:  # parser bugs must not escape
        logger.info("HTML parsing failed", exc_info=True)
        raise ExtractionError(f"unreadable HTML: {short_reason(exc)}") from exc

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
    return RawExtraction(title=title, text=builder.result())


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
