"""Tests for documents.ingestion.extract: plain text, Markdown, encodings, normalisation."""

from __future__ import annotations

import codecs
import random

import pytest

from documents.ingestion.extract import ExtractedText, extract_text
from tests.documents.test_extract import LEAVE_NOTICE, _error_message


class TestExtractPlainText:
    def test_returns_text_type_and_first_line_title(self) -> None:
        """A .txt file is decoded, typed "txt" and titled by its first line."""
        result = extract_text(b"\n\nMeeting notes\nWe agreed on a plan.\n", filename="n.txt")
        assert result == ExtractedText(
            text="Meeting notes\nWe agreed on a plan.", source_type="txt", title="Meeting notes"
        )

    def test_title_is_capped_at_200_characters(self) -> None:
        """A very long first line gives a title of at most 200 characters."""
        result = extract_text(("x" * 500 + "\nmore").encode(), filename="n.txt")
        assert result.title == "x" * 200

    def test_utf8_bom_is_stripped(self) -> None:
        """A UTF-8 byte order mark does not end up in text or title."""
        result = extract_text("\ufeffHello".encode(), filename="bom.txt")
        assert result.text == "Hello"
        assert result.title == "Hello"

    def test_utf16_with_bom_is_decoded(self) -> None:
        """UTF-16 text with a BOM is accepted despite its NUL bytes."""
        result = extract_text("héllo wörld 안녕".encode("utf-16"), filename="u.txt")
        assert result.text == "héllo wörld 안녕"

    def test_korean_text_round_trips(self) -> None:
        """UTF-8 Korean text is returned unchanged."""
        text = "대한민국은 민주공화국이다.\n\n모든 권력은 국민으로부터 나온다."
        assert extract_text(text.encode(), filename="ko.txt").text == text


class TestTextEncodings:
    @pytest.mark.parametrize("filename", ["leave.txt", "leave.md", "leave.csv"])
    def test_cp949_text_is_recovered_exactly(self, filename: str) -> None:
        """CP949 bytes in a .txt, .md or .csv file decode to the original Korean."""
        text = f"{LEAVE_NOTICE}\n\n연차는 팀장 승인 후 사용합니다. 똠방각하, 햏."
        result = extract_text(text.encode("cp949"), filename=filename)
        assert result.text == text
        assert result.source_type == ("md" if filename.endswith(".md") else "txt")

    def test_euc_kr_text_is_recovered_exactly(self) -> None:
        """EUC-KR, a subset of CP949, decodes to the original Korean."""
        result = extract_text(LEAVE_NOTICE.encode("euc-kr"), filename="notice.txt")
        assert result == ExtractedText(text=LEAVE_NOTICE, source_type="txt", title=LEAVE_NOTICE)

    def test_cp949_markdown_is_titled_by_its_heading(self) -> None:
        """A legacy-encoded Markdown file still gets its "# " heading as title."""
        raw = "# 휴가 안내\n\n연차는 팀장 승인 후 사용합니다.\n"
        result = extract_text(raw.encode("cp949"), filename="guide.md")
        assert result.title == "휴가 안내"
        assert result.text == raw.strip()

    def test_cp949_csv_is_plain_text_titled_by_file_name(self) -> None:
        """A CSV is stored as plain text; its header row is not the title."""
        raw = "이름,부서,남은 연차\n김민수,인사팀,12\n이영희,개발팀,7\n"
        result = extract_text(raw.encode("cp949"), filename="연차 현황.csv")
        assert result == ExtractedText(text=raw.strip(), source_type="txt", title="연차 현황")

    def test_cp949_mostly_english_with_some_korean(self) -> None:
        """English text with a few Korean words in CP949 decodes (its letters are Hangul)."""
        text = "Project plan for the Seoul office: 회의 일정 and budget review by Friday."
        assert extract_text(text.encode("cp949"), filename="plan.txt").text == text

    def test_cp949_box_drawing_table(self) -> None:
        """Box-drawing tables, common in old Korean text files, do not count against it."""
        text = "┌──────┬──────┐\n│ 항목 │ 금액 │\n└──────┴──────┘\n※ 영수증을 첨부하십시오."
        assert extract_text(text.encode("cp949"), filename="expenses.txt").text == text

    def test_cp949_heavy_in_hanja_is_confirmed_by_the_detector(self) -> None:
        """Text with more Hanja than Hangul decodes when the detector agrees it is Korean."""
        text = "大韓民國 憲法 第一條 大韓民國은 民主共和國이다."
        assert extract_text(text.encode("cp949"), filename="law.txt").text == text

    def test_utf8_with_bom_korean(self) -> None:
        """UTF-8 with a byte order mark decodes, without the mark."""
        result = extract_text(LEAVE_NOTICE.encode("utf-8-sig"), filename="bom.txt")
        assert result.text == LEAVE_NOTICE

    @pytest.mark.parametrize(
        ("bom", "codec"),
        [(codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")],
        ids=["le", "be"],
    )
    def test_utf16_with_bom_korean(self, bom: bytes, codec: str) -> None:
        """UTF-16 in either byte order decodes when it starts with a BOM."""
        data = bom + LEAVE_NOTICE.encode(codec)
        assert extract_text(data, filename="u16.txt").text == LEAVE_NOTICE

    def test_latin1_english_is_refused_clearly(self) -> None:
        """Latin-1 is not guessed (any bytes fit it); the first bad byte is named."""
        data = b"Caf\xe9 au lait and croissants are served in the lobby every morning."
        assert _error_message(data, "menu.txt") == (
            "not valid UTF-8 text (invalid byte 0xe9 at offset 3) and no other encoding fits"
        )

    def test_damaged_utf8_korean_is_not_read_as_another_encoding(self) -> None:
        """UTF-8 Korean cut mid-character is refused, not indexed as mojibake."""
        data = LEAVE_NOTICE.encode()[:-2]
        assert _error_message(data, "cut.txt").startswith("not valid UTF-8 text (invalid byte")

    def test_utf8_bom_means_utf8(self) -> None:
        """A file marked UTF-8 is not decoded as CP949 when its UTF-8 is broken."""
        text = "Leave policy: 휴가 applies to all staff members in every office."
        data = codecs.BOM_UTF8 + text.encode("cp949")
        assert _error_message(data, "bom.txt") == (
            f"not valid UTF-8 text (invalid byte 0x{data[17]:02x} at offset 17)"
        )

    def test_random_high_bytes_are_still_binary(self) -> None:
        """Random bytes without NULs decode in no encoding and stay binary."""
        data = random.Random(7).randbytes(8192).replace(b"\0", b"\x01")
        assert _error_message(data, "blob.txt") == "binary content, not text"

    def test_repeated_symbol_bytes_are_not_korean(self) -> None:
        """Bytes that decode as CP949 symbols only (no Hangul) are not taken as Korean."""
        assert _error_message(b"\xa2\xa2" * 2048, "blob.csv") == "binary content, not text"


class TestNormalisation:
    def test_newlines_controls_trailing_spaces_and_blank_runs(self) -> None:
        """CRLF/CR become LF, controls vanish, lines are right-trimmed, blanks squeezed."""
        raw = b"one  \r\ntwo\x01\x02\tend\t\rthree\r\n\r\n\r\n\r\n\r\nfour\x0cfive\n"
        result = extract_text(raw, filename="n.txt")
        assert result.text == "one\ntwo\tend\nthree\n\nfour\nfive"

    def test_single_blank_line_is_kept(self) -> None:
        """A single blank line (paragraph break) survives normalisation."""
        assert extract_text(b"a\n\nb", filename="n.txt").text == "a\n\nb"


class TestExtractMarkdown:
    def test_keeps_raw_markdown_and_uses_first_heading(self) -> None:
        """Markdown is kept verbatim and titled by its first "# " heading."""
        raw = "Intro line\n\n# Install Guide #\n\nRun *make*.\n"
        result = extract_text(raw.encode(), filename="guide.md")
        assert result.source_type == "md"
        assert result.title == "Install Guide"
        assert result.text == raw.strip()

    def test_heading_inside_code_fence_is_ignored(self) -> None:
        """A "# comment" inside a fenced code block is not the title."""
        raw = "```bash\n# not a title\n```\n\n# Real Title\n"
        assert extract_text(raw.encode(), filename="x.markdown").title == "Real Title"

    def test_closing_hashes_need_a_space(self) -> None:
        """ "# C#" keeps its hash; "# Title ##" loses the closing sequence."""
        assert extract_text(b"# C#\n", filename="c.md").title == "C#"
        assert extract_text(b"# Title ##\n", filename="c.md").title == "Title"

    def test_falls_back_to_file_stem(self) -> None:
        """Markdown without a heading is titled by the file name stem."""
        assert extract_text(b"just text", filename="dir/notes.v2.md").title == "notes.v2"
