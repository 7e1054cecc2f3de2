"""HWP 5.0 and HWPX (Hangul) uploads: round trips, detection, refusals and bombs.

Every file is built by ``tests.documents.hwp_samples``; none is downloaded.
"""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from io import StringIO
from typing import TYPE_CHECKING

import docx
import pytest
from django.core.management import call_command
from hwpx import HwpxDocument

from documents.ingestion.extract import ExtractedText, ExtractionError, extract_text, limits
from documents.models import Document
from tests.documents.hwp_samples import (
    DRM,
    build_cfb,
    hwp_streams,
    make_hwp,
    make_hwpx,
    rezip,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from pathlib import Path

    CaptureCallbacks = Callable[..., AbstractContextManager[list[Callable[[], None]]]]

pytestmark = pytest.mark.django_db

PARAGRAPHS = [
    "한글 문서 검색 테스트",
    "대한민국 헌법 제1조 ① 대한민국은 민주공화국이다.",
    "Mixed English and 한국어 text: HWP 5.0 parser, version 2.1.",
    "두 번째 줄\n줄바꿈 뒤의 텍스트",
    "탭\t구분\t값",
    "특수문자 <태그> & \"따옴표\" 'apostrophe' ₩1,000 😀",
]
TABLE = [["항목", "값", "Note"], ["사과", "3개", "red apple"], ["배", "5개\n(국산)", "pear"]]
# As the DOCX path renders tables: a row per line, " | " between cells, the
# lines of one cell joined by a space.
EXPECTED_TABLE = "항목 | 값 | Note\n사과 | 3개 | red apple\n배 | 5개 (국산) | pear"
TITLE = "테스트 제목 Test Title"
FORMATS = ["hwp", "hwpx"]
MAKERS: dict[str, Callable[..., bytes]] = {"hwp": make_hwp, "hwpx": make_hwpx}
LABELS = {"hwp": "HWP", "hwpx": "HWPX"}


def extract(fmt: str, data: bytes, *, name: str = "문서") -> ExtractedText:
    return extract_text(data, filename=f"{name}.{fmt}")


def refusal(data: bytes, filename: str) -> str:
    with pytest.raises(ExtractionError) as excinfo:
        extract_text(data, filename=filename)
    return str(excinfo.value)


def with_file_header(streams: dict[str, bytes], *, version: int | None = None) -> bytes:
    """Build an HWP file after rewriting the FileHeader version."""
    header = bytearray(streams["FileHeader"])
    if version is not None:
        header[32:36] = struct.pack("<I", version)
    return build_cfb({**streams, "FileHeader": bytes(header)})


def deflated_zeros(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b"\0" * (1 << 20)
    return b"".join(compressor.compress(chunk) for _ in range(size >> 20)) + compressor.flush()


class TestRoundTrip:
    @pytest.mark.parametrize("fmt", FORMATS)
    def test_paragraphs_breaks_tabs_and_title(self, fmt: str) -> None:
        """Korean and English paragraphs, line breaks and tabs survive; the title is read."""
        result = extract(fmt, MAKERS[fmt](PARAGRAPHS, title=TITLE))
        assert result.text == "\n\n".join(PARAGRAPHS)
        assert result.title == TITLE
        assert result.source_type == Document.SourceType.HWP

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_table_rows_come_out_like_docx_tables(self, fmt: str) -> None:
        """A table is one block after the paragraphs before it, one line per row."""
        result = extract(fmt, MAKERS[fmt](PARAGRAPHS[:2], table=TABLE))
        assert result.text == "\n\n".join([*PARAGRAPHS[:2], EXPECTED_TABLE])

    def test_docx_renders_the_same_table_the_same_way(self) -> None:
        """The DOCX path, the reference for table text, gives the same rows."""
        document = docx.Document()
        table = document.add_table(rows=len(TABLE), cols=len(TABLE[0]))
        for r, row in enumerate(TABLE):
            for c, value in enumerate(row):
                table.rows[r].cells[c].text = value
        buffer = io.BytesIO()
        document.save(buffer)
        assert extract_text(buffer.getvalue(), filename="t.docx").text == EXPECTED_TABLE

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_without_a_title_the_first_line_is_the_title(self, fmt: str) -> None:
        """No summary or opf:title: the first line of text is the title, as for PDF."""
        result = extract(fmt, MAKERS[fmt](["첫 줄 제목\n둘째 줄", "본문"]), name="file-name")
        assert result.title == "첫 줄 제목"

    def test_uncompressed_hwp(self) -> None:
        """An HWP file saved without compression reads the same."""
        result = extract("hwp", make_hwp(PARAGRAPHS, compressed=False))
        assert result.text == "\n\n".join(PARAGRAPHS)

    def test_hwpx_sections_follow_each_other(self) -> None:
        """A second section follows the first, a blank line between them."""
        data = make_hwpx(["첫 구역"])
        source = zipfile.ZipFile(io.BytesIO(data))
        second = source.read("Contents/section0.xml").replace("첫 구역".encode(), "둘째".encode())
        hpf = source.read("Contents/content.hpf").decode()
        hpf = hpf.replace(
            '<opf:itemref idref="section0"/>',
            '<opf:itemref idref="section0"/><opf:itemref idref="section1"/>',
        ).replace(
            "</opf:manifest>",
            '<opf:item id="section1" href="Contents/section1.xml" '
            'media-type="application/xml"/></opf:manifest>',
        )
        buffer = io.BytesIO(rezip(data, {"Contents/content.hpf": hpf.encode()}))
        with zipfile.ZipFile(buffer, "a") as archive:
            archive.writestr("Contents/section1.xml", second)
        assert extract("hwpx", buffer.getvalue()).text == "첫 구역\n\n둘째"

    def test_text_boxes_and_dutmal_are_read_headers_are_not(self) -> None:
        """Text boxes come where they sit and 덧말 gives its main text; headers are skipped."""
        section = (
            '<hs:sec xmlns:hs="http://www.hancom.co.kr/hwpml/2011/section" '
            'xmlns:hp="http://www.hancom.co.kr/hwpml/2011/paragraph">'
            "<hp:p><hp:run><hp:t>앞</hp:t><hp:ctrl><hp:header><hp:subList><hp:p><hp:run>"
            "<hp:t>머리말</hp:t></hp:run></hp:p></hp:subList></hp:header></hp:ctrl>"
            "<hp:rect><hp:drawText><hp:subList><hp:p><hp:run><hp:t>글상자</hp:t></hp:run>"
            "</hp:p></hp:subList></hp:drawText></hp:rect><hp:t>뒤</hp:t></hp:run></hp:p>"
            "<hp:p><hp:run><hp:dutmal><hp:mainText>本文</hp:mainText>"
            "<hp:subText>본문</hp:subText></hp:dutmal></hp:run></hp:p>"
            "<hp:p><hp:run><hp:t>줄<hp:lineBreak/>바꿈<hp:tab/>탭</hp:t></hp:run></hp:p></hs:sec>"
        )
        data = rezip(make_hwpx(["x"]), {"Contents/section0.xml": section.encode()})
        assert extract("hwpx", data).text == "앞\n\n글상자\n\n뒤\n\n本文\n\n줄\n바꿈\t탭"

    def test_files_from_another_writer(self) -> None:
        """Files python-hwpx writes (a second, independent writer) read the same."""
        document = HwpxDocument.new()
        for paragraph in PARAGRAPHS:
            document.add_paragraph(paragraph)
        expected = "\n\n".join(PARAGRAPHS)
        assert extract("hwpx", document.to_bytes()).text == expected
        assert extract("hwp", document.to_bytes(format="hwp")).text == expected


class TestDetection:
    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize("filename", ["notes.txt", "scan.doc", "download"])
    def test_content_decides_whatever_the_name(self, fmt: str, filename: str) -> None:
        """A Hangul file with a wrong or no extension is still read as one."""
        result = extract_text(MAKERS[fmt](PARAGRAPHS, title=TITLE), filename=filename)
        assert (result.source_type, result.title) == ("hwp", TITLE)
        assert result.text == "\n\n".join(PARAGRAPHS)

    def test_other_ole_files_are_not_hwp(self) -> None:
        """A compound file without an HWP FileHeader (a .doc) is not taken for HWP."""
        word = build_cfb({"WordDocument": b"\0" * 100})
        assert refusal(word, "old.doc").startswith("unsupported file type '.doc'")
        assert refusal(word, "old.hwp") == (
            "not a valid HWP document: expected a Hangul HWP 5.0 file"
        )

    def test_text_named_hwp_or_hwpx_is_refused(self) -> None:
        """The name promises a Hangul file, the content is not one."""
        assert refusal(b"hello", "a.hwp").startswith("not a valid HWP document")
        assert refusal(b"hello", "a.hwpx").startswith("not a valid HWPX document")

    def test_zip_with_another_mimetype_is_not_hwpx(self) -> None:
        """An EPUB-like archive named .hwpx is refused; DOCX stays DOCX."""
        epub = rezip(make_hwpx(PARAGRAPHS), {"mimetype": b"application/epub+zip"})
        assert refusal(epub, "book.hwpx").startswith("not a valid HWPX document")
        document = docx.Document()
        document.add_paragraph("Word text")
        buffer = io.BytesIO()
        document.save(buffer)
        assert extract_text(buffer.getvalue(), filename="a.docx").source_type == "docx"


class TestRefusals:
    @pytest.mark.parametrize("fmt", FORMATS)
    def test_password_protected(self, fmt: str) -> None:
        """Password-protected files are refused, never indexed as ciphertext."""
        message = refusal(MAKERS[fmt](PARAGRAPHS, encrypted=True), f"secret.{fmt}")
        assert message == f"encrypted or password-protected {LABELS[fmt]} document"

    def test_drm_bit(self) -> None:
        """The DRM property bit refuses the file, whatever its streams hold."""
        assert refusal(make_hwp(PARAGRAPHS, flags=DRM), "drm.hwp") == "DRM-protected HWP document"

    def test_certificate_encryption_bit(self) -> None:
        """Certificate encryption (bit 8) counts as encryption."""
        message = refusal(make_hwp(PARAGRAPHS, flags=1 << 8), "cert.hwp")
        assert message == "encrypted or password-protected HWP document"

    def test_distribution_document(self) -> None:
        """배포용 documents are refused with a message naming them."""
        message = refusal(make_hwp(PARAGRAPHS, distribution=True), "배포.hwp")
        assert message.startswith("distribution-only HWP document (배포용 문서)")

    def test_viewtext_without_bodytext_is_distribution_without_the_bit(self) -> None:
        """A body only in ViewText is a distribution document even without its bit."""
        streams = hwp_streams(PARAGRAPHS, distribution=True)
        header = bytearray(streams["FileHeader"])
        header[36:40] = struct.pack("<I", 1)  # compressed only
        data = build_cfb({**streams, "FileHeader": bytes(header)})
        assert refusal(data, "view.hwp").startswith("distribution-only HWP document")

    def test_zip_level_encryption(self) -> None:
        """An HWPX whose zip entries are encrypted is refused as encrypted."""
        data = bytearray(make_hwpx(PARAGRAPHS))
        position = data.find(b"PK\x01\x02")
        while position != -1:  # the "encrypted" bit of every central directory entry
            data[position + 8] |= 0x01
            position = data.find(b"PK\x01\x02", position + 4)
        assert refusal(bytes(data), "z.hwpx") == "encrypted or password-protected HWPX document"

    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize(
        "paragraphs", [[], [""], ["   ", "\t"]], ids=["none", "blank", "spaces"]
    )
    def test_empty_documents(self, fmt: str, paragraphs: list[str]) -> None:
        """A document without text says so instead of importing nothing."""
        message = refusal(MAKERS[fmt](paragraphs), f"empty.{fmt}")
        assert message == f"{LABELS[fmt]} document contains no text"

    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
    def test_truncated_files(self, fmt: str, fraction: float) -> None:
        """A cut-off download is reported as corrupt."""
        data = MAKERS[fmt](PARAGRAPHS * 50, title=TITLE)
        message = refusal(data[: int(len(data) * fraction)], f"cut.{fmt}")
        assert message.startswith(f"corrupt or unreadable {LABELS[fmt]}: ")

    def test_truncated_section_stream(self) -> None:
        """A section whose deflate data stops early is corrupt, not silently short."""
        streams = hwp_streams(PARAGRAPHS * 20)
        streams["BodyText/Section0"] = streams["BodyText/Section0"][:-40]
        message = refusal(build_cfb(streams), "cut.hwp")
        assert message == "corrupt or unreadable HWP: BodyText/Section0 is truncated"

    def test_invalid_section_stream(self) -> None:
        """A section that is not deflate data is corrupt."""
        streams = hwp_streams(PARAGRAPHS)
        streams["BodyText/Section0"] = b"\xff" + streams["BodyText/Section0"][1:]
        assert refusal(build_cfb(streams), "bad.hwp").startswith("corrupt or unreadable HWP: ")

    @pytest.mark.parametrize("filename", ["old.hwp", "old.txt", "old"])
    def test_hwp_3_is_refused_by_name(self, filename: str) -> None:
        """HWP 3.x files get a message naming the old format, whatever their name."""
        data = b"HWP Document File V3.00 \x1a\x01\x02\x03\x04\x05" + bytes(200)
        assert refusal(data, filename).startswith("older HWP 3 format is not supported")

    def test_other_hwp_versions(self) -> None:
        """A compound file claiming another major version is refused as unsupported."""
        data = with_file_header(hwp_streams(PARAGRAPHS), version=0x04000000)
        assert refusal(data, "v4.hwp") == "unsupported HWP version 4: only HWP 5 is supported"

    def test_hwpx_without_sections(self) -> None:
        """An HWPX package with no body part is corrupt."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("mimetype", "application/hwp+zip")
            archive.writestr("Contents/content.hpf", "<opf:package/>")
        message = refusal(buffer.getvalue(), "hollow.hwpx")
        assert message == "corrupt or unreadable HWPX: no Contents/section0.xml"

    def test_malformed_section_xml(self) -> None:
        """Broken section XML is corrupt."""
        data = rezip(make_hwpx(PARAGRAPHS), {"Contents/section0.xml": b"<hs:sec><hp:p>"})
        assert refusal(data, "bad.hwpx").startswith("corrupt or unreadable HWPX: ")

    def test_xml_entity_expansion(self) -> None:
        """A DTD with nested entities (billion laughs) is refused, not expanded."""
        laughs = (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
            b'<hs:sec xmlns:hs="http://www.hancom.co.kr/hwpml/2011/section" '
            b'xmlns:hp="http://www.hancom.co.kr/hwpml/2011/paragraph">'
            b"<hp:p><hp:run><hp:t>&lol2;</hp:t></hp:run></hp:p></hs:sec>"
        )
        data = rezip(make_hwpx(PARAGRAPHS), {"Contents/section0.xml": laughs})
        assert refusal(data, "lol.hwpx").startswith("corrupt or unreadable HWPX: ")


class TestBombs:
    def test_hwp_section_bomb_is_refused_before_it_inflates(self) -> None:
        """A 100 KB section that inflates past the cap is refused in bounded memory."""
        streams = hwp_streams(PARAGRAPHS)
        size = limits.HWP_MAX_STREAM_INFLATED_BYTES + (8 << 20)
        streams["BodyText/Section0"] = deflated_zeros(size)
        data = build_cfb(streams)
        assert len(data) < 200_000
        tracemalloc.start()
        try:
            message = refusal(data, "bomb.hwp")
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert message == "HWP document too large when uncompressed (possible decompression bomb)"
        assert peak < 16 * 1024 * 1024

    def test_hwp_bomb_in_bindata_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Every stream python-hwpx would inflate is measured, not only the sections."""
        monkeypatch.setattr(limits, "HWP_MAX_STREAM_INFLATED_BYTES", 1 << 20)
        streams = hwp_streams(PARAGRAPHS)
        streams["BinData/BIN0001.bmp"] = deflated_zeros(2 << 20)
        assert refusal(build_cfb(streams), "bin.hwp").startswith("HWP document too large")

    def test_hwp_total_inflated_size_is_capped(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Sections that each pass the stream cap still count against the total."""
        monkeypatch.setattr(limits, "HWP_MAX_INFLATED_BYTES", 3000)
        streams = hwp_streams(PARAGRAPHS * 5)
        streams["BodyText/Section1"] = streams["BodyText/Section0"]
        assert refusal(build_cfb(streams), "two.hwp").startswith("HWP document too large")

    def test_hwpx_member_bomb_is_refused_by_the_shared_guard(self) -> None:
        """A small HWPX expanding past the zip limit is refused before parsing."""
        buffer = io.BytesIO(make_hwpx(PARAGRAPHS))
        with zipfile.ZipFile(buffer, "a", zipfile.ZIP_DEFLATED) as archive:
            info = zipfile.ZipInfo("BinData/image1.bmp")
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                for _ in range((limits.MAX_ZIP_UNCOMPRESSED_BYTES >> 20) + 1):
                    member.write(b"\0" * (1 << 20))
        assert len(buffer.getvalue()) < 1_000_000
        tracemalloc.start()
        try:
            message = refusal(buffer.getvalue(), "bomb.hwpx")
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert message == "archive too large when uncompressed (possible zip bomb)"
        assert peak < 16 * 1024 * 1024

    def test_hwpx_with_too_many_parts(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Thousands of tiny parts are refused like a bomb."""
        monkeypatch.setattr(limits, "HWPX_MAX_MEMBERS", 50)
        data = rezip(make_hwpx(PARAGRAPHS), {}, extra=60)
        message = refusal(data, "many.hwpx")
        assert message == "HWPX archive has too many parts (possible zip bomb)"


class TestPerformance:
    @pytest.mark.parametrize(("fmt", "budget"), [("hwpx", 1.0), ("hwp", 5.0)])
    def test_five_thousand_paragraphs(self, fmt: str, budget: float) -> None:
        """A 5,000-paragraph document with a table extracts within its time budget."""
        paragraphs = [
            f"{i:04d}번째 문단 paragraph {i} 키워드{i * 7919 % 10007}" for i in range(5000)
        ]
        table = [[f"셀 {r}-{c}" for c in range(5)] for r in range(60)]
        data = MAKERS[fmt](paragraphs, title="긴 문서", table=table)
        started = time.perf_counter()
        result = extract(fmt, data)
        elapsed = time.perf_counter() - started
        assert result.text.startswith("\n\n".join(paragraphs) + "\n\n셀 0-0 | 셀 0-1")
        assert elapsed < budget, f"{fmt}: {elapsed:.2f} s"


class TestImportCommand:
    def test_hangul_files_import_and_refusals_are_counted(
        self, tmp_path: Path, django_capture_on_commit_callbacks: CaptureCallbacks
    ) -> None:
        """import_documents imports .hwp/.hwpx files and names each refused one."""
        files = {
            "report.hwp": make_hwp(PARAGRAPHS, title="보고서", table=TABLE),
            "memo.hwpx": make_hwpx(["회의록 Meeting notes", "다음 회의는 월요일입니다."]),
            "secret.hwp": make_hwp(PARAGRAPHS, encrypted=True),
            "배포.hwp": make_hwp(PARAGRAPHS, distribution=True),
            "old.hwp": b"HWP Document File V3.00 \x1a\x01\x02\x03\x04\x05" + bytes(200),
            "empty.hwpx": make_hwpx([]),
        }
        for name, data in files.items():
            (tmp_path / name).write_bytes(data)
        out = StringIO()
        with django_capture_on_commit_callbacks(execute=True):
            call_command("import_documents", str(tmp_path), no_progress=True, stdout=out)
        lines = out.getvalue().splitlines()

        assert "Import finished: 2 imported, 0 updated, 0 unchanged, 4 failed." in lines
        failures = {
            line.strip().removeprefix("failed: ").split(": ", 1)[0].rsplit("/", 1)[-1]
            for line in lines
            if line.strip().startswith("failed: ")
        }
        assert failures == {"secret.hwp", "배포.hwp", "old.hwp", "empty.hwpx"}
        documents = {d.original_filename: d for d in Document.objects.all()}
        assert set(documents) == {"report.hwp", "memo.hwpx"}
        assert documents["report.hwp"].title == "보고서"
        assert EXPECTED_TABLE in documents["report.hwp"].text
        assert documents["memo.hwpx"].title == "회의록 Meeting notes"
        for document in documents.values():
            assert document.source_type == Document.SourceType.HWP
            assert document.status == Document.Status.READY
            assert document.chunks.exists()
