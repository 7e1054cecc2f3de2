"""Tests for documents.ingestion.extract: formats, detection, encodings and rejections."""

from __future__ import annotations

import io
import os
import random
import time
import zipfile

import docx
import pytest
from pypdf import PdfReader, PdfWriter

from documents.ingestion.extract import (
    FORMATS,
    SUPPORTED_EXTENSIONS,
    ExtractionError,
    extract_text,
    limits,
)
from documents.ingestion.extract.common import check_zip_bomb
from documents.models import Document


def _make_pdf(pages: list[list[str]], *, title: str | None = None) -> bytes:
    """Build a minimal valid PDF with one Helvetica text line per list item."""
    page_count = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(page_count))
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {page_count} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for index, lines in enumerate(pages):
        operators = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            operators.append(f"({escaped}) Tj T*")
        operators.append("ET")
        stream = "\n".join(operators).encode("latin-1")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * index)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    info_ref = b""
    if title is not None:
        objects.append(b"<< /Title (%s) >>" % title.encode("latin-1"))
        info_ref = b" /Info %d 0 R" % len(objects)

    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref_offset = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, info_ref, xref_offset)
    )
    return out.getvalue()


def _encrypt_pdf(data: bytes, *, user_password: str, owner_password: str) -> bytes:
    """Return a copy of the PDF encrypted with RC4 (works without cryptography)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password, owner_password=owner_password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _make_docx(*, title: str | None = None) -> bytes:
    """Build a DOCX with a heading, paragraphs and a table with a merged row."""
    document = docx.Document()
    if title is not None:
        document.core_properties.title = title
    document.add_heading("Quarterly Report", level=1)
    document.add_paragraph("Revenue grew in every region.")
    document.add_paragraph("Costs stayed flat.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Region"
    table.cell(0, 1).text = "Growth"
    merged = table.cell(1, 0).merge(table.cell(1, 1))
    merged.text = "All regions grew"
    document.add_paragraph("Closing remarks.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _zip_bytes(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """Build a zip archive in memory."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


LEAVE_NOTICE = "휴가 신청 방법 안내 문서입니다."


def _error_message(data: bytes, filename: str) -> str:
    """Return the ExtractionError message raised for the given upload."""
    with pytest.raises(ExtractionError) as caught:
        extract_text(data, filename=filename)
    return str(caught.value)


class TestExtractHtml:
    def test_drops_scripts_and_splits_blocks_into_paragraphs(self) -> None:
        """Scripts/styles vanish; blocks become paragraphs; inline whitespace collapses."""
        html = (
            b"<!DOCTYPE html><html><head><title>  Site\n Title </title>"
            b"<style>p{color:red}</style><script>var secret = 1;</script></head>"
            b"<body><h1>Heading</h1><p>Hello <b>bold</b>\n   world</p>"
            b"<noscript>enable js</noscript><template><p>tpl</p></template>"
            b"<ul><li>one</li><li>two</li></ul><!-- a comment -->"
            b"<p>line<br>break</p></body></html>"
        )
        result = extract_text(html, filename="page.html")
        assert result.source_type == "html"
        assert result.title == "Site Title"
        assert result.text == "Heading\n\nHello bold world\n\none\n\ntwo\n\nline\nbreak"
        for hidden in ("secret", "color", "enable js", "tpl", "comment"):
            assert hidden not in result.text

    def test_title_falls_back_to_first_h1(self) -> None:
        """Without <title>, the first <h1> is the title."""
        result = extract_text(b"<div><h1>First</h1><h1>Second</h1>x</div>", filename="f.htm")
        assert result.title == "First"

    def test_tables_render_one_row_per_line(self) -> None:
        """Table cells are joined with " | " and each row is its own line."""
        html = b"<table><tr><th>a</th><td></td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>"
        assert extract_text(html, filename="t.html").text == "a | b\nc | d"

    def test_pre_keeps_its_whitespace(self) -> None:
        """Preformatted blocks keep indentation and line breaks."""
        html = b"<p>See:</p><pre>def f():\n    return 1\n</pre>"
        assert extract_text(html, filename="c.html").text == "See:\n\ndef f():\n    return 1"

    def test_deeply_nested_markup_does_not_recurse(self) -> None:
        """Thousands of nested elements are handled without RecursionError."""
        html = b"<div>" * 5000 + b"deep" + b"</div>" * 5000
        assert extract_text(html, filename="deep.html").text == "deep"

    def test_meta_charset_euc_kr(self) -> None:
        """Legacy Korean HTML is decoded with the charset its <meta> declares."""
        html = (
            b'<html><head><meta charset="euc-kr"><title>'
            + "휴가 안내".encode("cp949")
            + b"</title></head><body><p>"
            + LEAVE_NOTICE.encode("cp949")
            + b"</p></body></html>"
        )
        result = extract_text(html, filename="leave.html")
        assert (result.title, result.text) == ("휴가 안내", LEAVE_NOTICE)

    def test_http_equiv_charset_latin1_is_trusted(self) -> None:
        """A declared Latin-1 page decodes: a declaration is evidence, not a guess."""
        html = (
            b'<html><head><meta http-equiv="Content-Type" '
            b'content="text/html; charset=iso-8859-1"></head>'
            b"<body><p>Caf\xe9 cr\xe8me</p></body></html>"
        )
        assert extract_text(html, filename="menu.htm").text == "Café crème"

    def test_undeclared_cp949_html_is_detected(self) -> None:
        """CP949 HTML without a declaration is detected, even with an unknown extension."""
        html = b"<html><body><p>" + LEAVE_NOTICE.encode("cp949") + b"</p></body></html>"
        result = extract_text(html, filename="saved.dat")
        assert (result.source_type, result.text) == ("html", LEAVE_NOTICE)

    def test_valid_utf8_wins_over_a_wrong_declaration(self) -> None:
        """UTF-8 bytes are read as UTF-8 even when the page claims EUC-KR."""
        html = '<meta charset="euc-kr"><p>' + LEAVE_NOTICE + "</p>"
        assert extract_text(html.encode(), filename="p.html").text == LEAVE_NOTICE

    def test_undeclared_latin1_html_is_refused(self) -> None:
        """HTML in an undeclared single-byte encoding is refused like text."""
        html = b"<html><body><p>Caf\xe9 au lait and croissants every morning.</p></body></html>"
        assert _error_message(html, "menu.html").startswith(
            "not valid UTF-8 text (invalid byte 0xe9 at offset 18)"
        )


class TestTypeDetection:
    def test_html_content_wins_over_txt_extension(self) -> None:
        """A .txt upload that is really HTML is parsed as HTML."""
        result = extract_text(b"  <html><body><p>Hi</p></body></html>", filename="x.txt")
        assert result.source_type == "html"
        assert result.text == "Hi"

    def test_html_detection_skips_bom_and_leading_comment(self) -> None:
        """A BOM and leading comment before <!doctype html> still count as HTML."""
        data = "\ufeff<!-- saved page --><!DOCTYPE html><p>Hi".encode()
        assert extract_text(data, filename="page.dat").source_type == "html"

    def test_html_detection_skips_xml_prolog(self) -> None:
        """An XHTML file starting with an XML prolog is HTML."""
        data = b'<?xml version="1.0"?>\n<html><body><p>Hi</p></body></html>'
        assert extract_text(data, filename="page.xhtml").source_type == "html"

    def test_header_tag_is_not_mistaken_for_head(self) -> None:
        """Text starting with "<header>" is not sniffed as an HTML document."""
        assert extract_text(b"<header> is a tag", filename="x.md").source_type == "md"

    def test_pdf_content_wins_over_txt_extension(self) -> None:
        """PDF bytes uploaded as .txt are read as a PDF."""
        result = extract_text(_make_pdf([["Hello PDF"]]), filename="wrong.txt")
        assert result.source_type == "pdf"

    def test_docx_content_with_unknown_extension_is_read(self) -> None:
        """A DOCX with an unfamiliar extension is recognised by content."""
        assert extract_text(_make_docx(), filename="report.bin").source_type == "docx"

    def test_plain_zip_is_rejected(self) -> None:
        """A zip that is not a DOCX is rejected as a ZIP archive."""
        data = _zip_bytes({"a.txt": b"hello"})
        assert _error_message(data, "a.zip") == "unsupported file type: ZIP archive"

    def test_text_named_pdf_is_rejected(self) -> None:
        """A .pdf whose content is not a PDF says it is not a valid PDF."""
        message = _error_message(b"<html>404 Not Found</html>", "report.pdf")
        assert "not a valid PDF" in message

    def test_text_named_docx_is_rejected(self) -> None:
        """A .docx whose content is not a Word archive says it is not a DOCX."""
        assert "not a valid DOCX" in _error_message(b"hello", "report.docx")

    def test_unsupported_extension_lists_supported_types(self) -> None:
        """Unknown extensions with unrecognised content name the supported types."""
        message = _error_message(b"hello", "data.xyz")
        assert message == (
            "unsupported file type '.xyz' (supported: .csv, .docx, .html, .hwp, .hwpx, .md, .pdf, .txt)"
        )

    def test_missing_extension_is_unsupported(self) -> None:
        """A name without extension and plain text content is rejected."""
        assert _error_message(b"hello", "README").startswith("unsupported file type")

    def test_windows_path_in_filename_is_reduced_to_basename(self) -> None:
        """A client-side Windows path only contributes its last component."""
        result = extract_text(b"<p>x</p>", filename="C:\\Users\\me\\Page One.html")
        assert result.title == "Page One"

    def test_supported_extensions_constant(self) -> None:
        """SUPPORTED_EXTENSIONS lists every accepted extension."""
        expected = [
            ".txt",
            ".csv",
            ".md",
            ".markdown",
            ".html",
            ".htm",
            ".pdf",
            ".docx",
            ".hwp",
            ".hwpx",
        ]
        assert set(SUPPORTED_EXTENSIONS) == set(expected)

    def test_every_format_stores_a_known_source_type(self) -> None:
        """Each row of the dispatch table maps to a Document.SourceType value."""
        assert {fmt.source_type for fmt in FORMATS} <= set(Document.SourceType.values)

    def test_each_extension_belongs_to_one_format(self) -> None:
        """No extension is claimed by two rows of the dispatch table."""
        extensions = [ext for fmt in FORMATS for ext in fmt.extensions]
        assert len(extensions) == len(set(extensions))


class TestExtractPdf:
    def test_pages_joined_with_blank_line_and_metadata_title(self) -> None:
        """Page texts are joined by a blank line; the Info title wins."""
        data = _make_pdf([["Hello PDF world.", "Second (line)."], ["Page two."]], title="Doc T")
        result = extract_text(data, filename="a.pdf")
        assert result.source_type == "pdf"
        assert result.title == "Doc T"
        assert result.text == "Hello PDF world.\nSecond (line).\n\nPage two."

    def test_title_falls_back_to_first_line(self) -> None:
        """Without metadata title, the first non-empty text line is used."""
        assert extract_text(_make_pdf([["First line", "b"]]), filename="a.pdf").title == (
            "First line"
        )

    def test_encrypted_pdf_with_user_password_is_rejected(self) -> None:
        """A PDF that needs a password to open gives a clear message."""
        data = _encrypt_pdf(_make_pdf([["Secret"]]), user_password="pw", owner_password="pw")
        assert _error_message(data, "s.pdf") == "encrypted PDF (password required)"

    def test_owner_only_encrypted_pdf_is_read(self) -> None:
        """A PDF with an empty user password (owner restrictions only) is read."""
        data = _encrypt_pdf(_make_pdf([["Readable"]]), user_password="", owner_password="own")
        assert extract_text(data, filename="s.pdf").text == "Readable"

    @pytest.mark.parametrize("keep", [20, 120, 400])
    def test_truncated_pdf_is_reported_as_corrupt(self, keep: int) -> None:
        """Truncated PDFs raise a corrupt-PDF error, not a raw pypdf exception."""
        data = _make_pdf([["Hello PDF world."]])[:keep]
        assert _error_message(data, "t.pdf").startswith("corrupt or unreadable PDF: ")

    def test_garbage_after_header_is_reported_as_corrupt(self) -> None:
        """A PDF header followed by junk is corrupt."""
        data = b"%PDF-1.7\n" + b"garbage " * 200
        assert _error_message(data, "g.pdf").startswith("corrupt or unreadable PDF")

    def test_pdf_without_text_layer(self) -> None:
        """A PDF whose pages carry no text asks whether it is a scan."""
        writer = PdfWriter()
        writer.add_blank_page(width=200, height=200)
        out = io.BytesIO()
        writer.write(out)
        message = _error_message(out.getvalue(), "scan.pdf")
        assert message == "PDF has no extractable text (scanned image?)"


class TestExtractDocx:
    def test_paragraphs_headings_and_tables_in_order(self) -> None:
        """Headings, paragraphs and table rows come out in document order."""
        result = extract_text(_make_docx(), filename="r.docx")
        assert result.source_type == "docx"
        assert result.text == (
            "Quarterly Report\n\nRevenue grew in every region.\n\nCosts stayed flat.\n\n"
            "Region | Growth\nAll regions grew\n\nClosing remarks."
        )

    def test_title_from_first_heading(self) -> None:
        """Without a core-properties title the first heading is the title."""
        assert extract_text(_make_docx(), filename="r.docx").title == "Quarterly Report"

    def test_title_from_core_properties(self) -> None:
        """The core-properties title wins over headings."""
        data = _make_docx(title="Official Title")
        assert extract_text(data, filename="r.docx").title == "Official Title"

    def test_truncated_docx_is_reported_as_corrupt(self) -> None:
        """A truncated DOCX gives a corrupt-DOCX error."""
        data = _make_docx()[:3000]
        assert _error_message(data, "r.docx").startswith("corrupt or unreadable DOCX: ")

    def test_docx_missing_parts_is_reported_as_corrupt(self) -> None:
        """A zip with word/document.xml but no OPC package parts is corrupt."""
        data = _zip_bytes({"word/document.xml": b"<w:document/>"})
        assert _error_message(data, "r.docx").startswith("corrupt or unreadable DOCX: ")

    def test_highly_compressed_member_is_a_zip_bomb(self) -> None:
        """A 2 MB member that compresses ~1000:1 trips the ratio guard."""
        data = _zip_bytes({"word/document.xml": b"\0" * (2 * 1024 * 1024)})
        message = _error_message(data, "bomb.docx")
        assert message == "archive too large when uncompressed (possible zip bomb)"

    def test_bomb_guard_is_shared_by_zip_formats(self) -> None:
        """The guard names the calling format in its corrupt-archive message."""
        bomb = _zip_bytes({"Contents/section0.xml": b"\0" * (2 * 1024 * 1024)})
        with pytest.raises(ExtractionError, match=r"possible zip bomb"):
            check_zip_bomb(bomb, label="HWPX")
        with pytest.raises(ExtractionError, match=r"^corrupt or unreadable HWPX: "):
            check_zip_bomb(bomb[:100], label="HWPX")

    def test_uncompressed_size_limit(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Archives expanding beyond the size limit are rejected even at ratio 1."""
        monkeypatch.setattr(limits, "MAX_ZIP_UNCOMPRESSED_BYTES", 1024 * 1024)
        data = _zip_bytes(
            {"word/document.xml": os.urandom(2 * 1024 * 1024)}, compression=zipfile.ZIP_STORED
        )
        assert "possible zip bomb" in _error_message(data, "big.docx")

    def test_normal_docx_passes_the_bomb_guard(self) -> None:
        """python-docx's own template (about 24:1) is not flagged."""
        assert extract_text(_make_docx(), filename="r.docx").text


class TestRejections:
    def test_empty_file(self) -> None:
        """Zero bytes is rejected as an empty file."""
        assert _error_message(b"", "e.txt") == "empty file"

    def test_too_large(self) -> None:
        """Files over max_bytes report both sizes in MB with one decimal."""
        with pytest.raises(ExtractionError) as caught:
            extract_text(b"x" * (1024 * 1024 + 1), filename="big.txt", max_bytes=1024 * 1024)
        assert str(caught.value) == "file too large: 1.1 MB exceeds the 1.0 MB limit"

    def test_random_binary_with_nuls(self) -> None:
        """Random bytes containing NULs are binary, not text."""
        data = os.urandom(4096) + b"\0"
        assert _error_message(data, "blob.txt") == "binary content, not text"

    def test_binary_without_nuls(self) -> None:
        """Mostly undecodable bytes without NULs are still binary."""
        rng = random.Random(1)
        data = bytes(rng.randrange(0x80, 0x100) for _ in range(4096))
        assert _error_message(data, "blob.md") == "binary content, not text"

    def test_mostly_control_characters(self) -> None:
        """Valid UTF-8 that is mostly control characters is binary."""
        assert _error_message(bytes(range(1, 32)) * 20 + b"abc", "c.txt") == (
            "binary content, not text"
        )

    def test_invalid_utf8_names_byte_and_offset(self) -> None:
        """Latin-1 text is not guessed: the first bad byte and offset are reported."""
        data = ("Ceci est un texte français assez long pour être du texte. " * 3).encode("latin-1")
        message = _error_message(data, "fr.txt")
        assert message == (
            "not valid UTF-8 text (invalid byte 0xe7 at offset 22) and no other encoding fits"
        )
        assert data.index(b"\xe7") == 22

    def test_invalid_utf8_offset_counts_the_bom(self) -> None:
        """Offsets are positions in the uploaded file, BOM included."""
        data = b"\xef\xbb\xbfabc\xff" + b"d" * 100
        assert _error_message(data, "b.txt") == (
            "not valid UTF-8 text (invalid byte 0xff at offset 6)"
        )

    def test_whitespace_only_file_has_no_text(self) -> None:
        """A file of blank lines has no text."""
        assert _error_message(b"  \n\n \t \n", "w.txt") == "no text found in file"

    def test_html_without_visible_text(self) -> None:
        """HTML containing only scripts has no text."""
        html = b"<html><script>alert(1)</script></html>"
        assert _error_message(html, "s.html") == "no text found in file"


class TestRobustness:
    def test_five_megabyte_single_line(self) -> None:
        """A 5 MB line without breaks is extracted in linear time."""
        data = b"word " * (1024 * 1024)
        started = time.perf_counter()
        result = extract_text(data, filename="long.txt")
        assert time.perf_counter() - started < 5
        assert len(result.text) == len(data) - 1  # only the trailing space goes
        assert len(result.title) <= 200

    def test_long_html_line(self) -> None:
        """A multi-megabyte HTML paragraph is handled."""
        data = b"<p>" + b"token " * (500 * 1024) + b"</p>"
        assert len(extract_text(data, filename="long.html").text) == 6 * 500 * 1024 - 1

    @pytest.mark.parametrize("kind", ["pdf", "docx"])
    def test_mutated_files_only_raise_extraction_error(self, kind: str) -> None:
        """Randomly damaged PDFs/DOCXs either extract or raise ExtractionError."""
        original = _make_pdf([["Hello world."]]) if kind == "pdf" else _make_docx()
        rng = random.Random(42)
        for _ in range(40):
            data = bytearray(original)
            for _ in range(rng.randint(1, 20)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            try:
                result = extract_text(bytes(data), filename=f"m.{kind}")
            except ExtractionError:
                continue
            assert isinstance(result.text, str)
