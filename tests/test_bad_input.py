"""Bad input: fuzzed queries, malformed API parameters, hostile uploads and imports."""

from __future__ import annotations

import io
import re
import zipfile
from io import StringIO
from typing import TYPE_CHECKING, Any, Final

import docx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from documents.ingestion.extract import limits
from documents.models import Document
from search.ranking.backends import SearchMode
from search.ranking.query import MAX_QUERY_CHARS, parse_query
from tests.factories import make_document

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from pathlib import Path

    from django.contrib.auth.models import User
    from django.test import Client
    from pytest_django.fixtures import Settings as SettingsWrapper

    CaptureCallbacks = Callable[..., AbstractContextManager[list[Callable[[], None]]]]

pytestmark = pytest.mark.django_db

MODES: Final = [mode.value for mode in SearchMode]

# -- Fuzzed queries ---------------------------------------------------------------

#: Pieces of SQL, tsquery, LIKE, regex, HTML and query syntax that have broken
#: search boxes before.
# fmt: off
NASTY: Final = [
    "'", '"', "\\", ";", "--", "/*", "*/", "' OR 1=1 --", "'; DROP TABLE documents_document; --",
    "$$", "E'\\x00'", "::regclass", "%", "_", "&", "|", "!", "<->", "<2>", ":*", ":A", "(", ")",
    "&&", "||", "!!", "-", "--x", '-"', '""', "OR", "or", "또는", "NOT", "AND", "*", "?", "[",
    "]", "{", "}", "^", "$", ".*", "\\d+", "<script>", "&amp;", "\x00", "\x1b[31m", "\u202e",
    "\u200b", "\ufeff", "\r\n", "\t", "😀", "임베딩은", "검색", "e-mail", "null", "NaN", "1e999",
    "-1", "0x00", "%00", "%s", "{0}", "${x}",
]
# fmt: on

WORDS: Final = [
    "vacation",
    "expense",
    "reports",
    "임베딩",
    "검색",
    "meaning",
    "SQL",
    '"vacation days"',
]
_CONTROL: Final = st.characters(codec="utf-8", categories=["Cc", "Cf", "Zs", "Zl", "Zp"])
QUERIES: Final = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=_CONTROL, max_size=50),
    st.lists(st.sampled_from(NASTY), min_size=1, max_size=12).map(" ".join),
    st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=8)), max_size=12).map("".join),
    # Real words among the debris, so that the ranking SQL runs with matches.
    st.lists(st.sampled_from([*NASTY, *WORDS]), min_size=1, max_size=12).map(" ".join),
    st.lists(st.sampled_from([*NASTY, *WORDS]), min_size=1, max_size=12).map("".join),
)
LONG_QUERIES: Final = st.text(min_size=MAX_QUERY_CHARS - 10, max_size=5000)
FUZZ: Final = hypothesis_settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def corpus() -> list[Document]:
    """A small indexed collection in Korean and English."""
    return [
        make_document("Vacation policy", "Employees receive twenty vacation days per year."),
        make_document("Expense reports", "Submit expense reports with receipts (e-mail ok)."),
        make_document("임베딩 검색", "임베딩은 문장의 의미를 벡터로 표현한다. Search by meaning."),
        make_document("SQL notes", "Never build SQL with string concatenation: ' OR 1=1 --"),
    ]


@pytest.fixture
def searcher(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def api_allows_400(query: str) -> bool:
    """The API answers 400 only to a blank query or one with a NUL character."""
    return not query.strip() or "\x00" in query


class TestQueryFuzz:
    @hypothesis_settings(max_examples=150, deadline=None)
    @given(raw=st.one_of(QUERIES, LONG_QUERIES))
    def test_parser_accepts_anything(self, raw: str) -> None:
        """The parser never raises; its text is printable, single-spaced and capped."""
        parsed = parse_query(raw)
        assert len(parsed.text) <= MAX_QUERY_CHARS
        # A cut may end on a space; otherwise the text is stripped.
        assert parsed.text == parsed.text.strip() or parsed.truncated
        assert "  " not in parsed.text
        assert all(ch.isprintable() for ch in parsed.text)
        assert all(term for term in parsed.terms)
        assert isinstance(parsed.semantic_text, str)

    @FUZZ
    @given(query=QUERIES, mode=st.sampled_from(MODES))
    def test_search_page_answers_anything(
        self, searcher: Client, corpus: list[Document], query: str, mode: str
    ) -> None:
        """Any query in any mode renders the page (results or a message), never a 500."""
        response = searcher.get("/search/", {"q": query, "mode": mode})
        assert response.status_code == 200
        form, page = response.context["form"], response.context["page"]
        assert page is not None or form.errors or not query.strip()

    @FUZZ
    @given(query=QUERIES, mode=st.sampled_from(MODES))
    def test_api_answers_anything(
        self, searcher: Client, corpus: list[Document], query: str, mode: str
    ) -> None:
        """Any query in any mode gets results, or a 400 with a message when blank."""
        response = searcher.get("/api/search", {"q": query, "mode": mode})
        if response.status_code == 400:
            assert api_allows_400(query)
            assert response.json()["error"]
        else:
            assert response.status_code == 200
            data = response.json()
            assert data["mode"] == mode
            assert isinstance(data["results"], list)
            assert data["total"] >= len(data["results"])

    @hypothesis_settings(FUZZ, max_examples=10)
    @given(query=LONG_QUERIES, mode=st.sampled_from(MODES))
    def test_long_queries_are_cut_with_a_note(
        self, searcher: Client, corpus: list[Document], query: str, mode: str
    ) -> None:
        """Queries up to 5,000 characters work; past 1,000 the answer says they were cut."""
        response = searcher.get("/api/search", {"q": query, "mode": mode})
        if response.status_code == 400:
            assert api_allows_400(query)
            return
        assert response.status_code == 200
        data = response.json()
        assert len(data["query"]) <= MAX_QUERY_CHARS
        printable = "".join(ch if ch.isprintable() else " " for ch in query)
        cut = len(" ".join(printable.split())) > MAX_QUERY_CHARS
        assert ("Your query was cut to its first 1,000 characters." in data["notes"]) is cut
        page = searcher.get("/search/", {"q": query, "mode": mode})
        assert page.status_code == 200

    @pytest.mark.parametrize("mode", MODES)
    def test_nasty_queries_still_find_documents(
        self, searcher: Client, corpus: list[Document], mode: str
    ) -> None:
        """Metacharacters around real words leave the words searchable."""
        query = "'; DROP TABLE documents_document; -- vacation <-> :* & | !"
        results = searcher.get("/api/search", {"q": query, "mode": mode}).json()["results"]
        assert corpus[0].pk in [result["id"] for result in results]
        assert Document.objects.count() == len(corpus)


# -- Malformed API parameters -------------------------------------------------------

BAD_PARAMETERS: Final[list[tuple[str, str, str]]] = [
    ("mode=bogus", "mode", "Select a valid choice."),
    ("k=abc", "k", "Enter a whole number."),
    ("k=-1", "k", "greater than or equal to 1"),
    ("k=0", "k", "greater than or equal to 1"),
    ("k=101", "k", "less than or equal to 100"),
    ("k=1e3", "k", "Enter a whole number."),
    ("k=99999999999999999999999", "k", "less than or equal to 100"),
    ("page=0", "page", "greater than or equal to 1"),
    ("page=-3", "page", "greater than or equal to 1"),
    ("page=x", "page", "Enter a whole number."),
    ("date_from=2024-13-45", "date_from", "Enter a valid date."),
    ("date_from=2024-02-30", "date_from", "Enter a valid date."),
    ("date_to=yesterday", "date_to", "Enter a valid date."),
    ("date_from=2024-05-01&date_to=2024-01-01", "date_to", "before the start date"),
    ("tag=" + "x" * 10_000, "tag", "Tags are at most 64 characters long"),
    ("tag=" + ",".join(f"t{i}" for i in range(30)), "tag", "Use at most 20 tags."),
    ("tag=a%00b", "tag", "Null characters are not allowed."),
    ("owner=nonexistent", "owner", "No user is named “nonexistent”."),
    ("source_type=exe", "source_type", "Select a valid choice."),
    ("language=xx", "language", "Select a valid choice."),
    ("sort=sideways", "sort", "Select a valid choice."),
    ("k=5&k=abc", "k", "Enter a whole number."),  # The last value counts.
]


class TestApiParameters:
    @pytest.mark.parametrize(("params", "field", "message"), BAD_PARAMETERS)
    def test_malformed_parameters_are_400(
        self, searcher: Client, corpus: list[Document], params: str, field: str, message: str
    ) -> None:
        """Each malformed parameter gets a 400 naming the field and what is wrong."""
        response = searcher.get(f"/api/search?q=vacation&{params}")
        assert response.status_code == 400
        data = response.json()
        assert data["error"] == "Invalid search parameters."
        assert message in " ".join(data["fields"][field])

    @pytest.mark.parametrize(("params", "field", "message"), BAD_PARAMETERS)
    def test_search_page_shows_the_same_errors(
        self, searcher: Client, corpus: list[Document], params: str, field: str, message: str
    ) -> None:
        """The search page shows the error on the page (200), never a 500."""
        response = searcher.get(f"/search/?q=vacation&{params}")
        assert response.status_code == 200
        assert response.context["form"].errors[field]

    @pytest.mark.parametrize(
        "params",
        [
            "mode=",
            "mode=keyword&mode=semantic",
            "q=zzz&q=vacation",
            "k=5&k=7",
            "page=",
            "k=",
            "date_from=",
            "tag=",
            "tag=hr&tag=hr&tag=HR",
            "unknown=1&foo[]=bar&__proto__=x",
            "owner=",
            "mode=KEYWORD",
        ],
    )
    def test_odd_but_valid_parameters(
        self, searcher: Client, corpus: list[Document], params: str
    ) -> None:
        """Blank, repeated (last wins) and unknown parameters are accepted."""
        response = searcher.get(f"/api/search?q=vacation&{params}")
        assert response.status_code in (200, 400), response.content
        if response.status_code == 400:  # Only a wrong-case mode may be refused.
            assert params == "mode=KEYWORD"
            assert response.json()["fields"]["mode"]

    def test_repeated_query_uses_the_last_value(
        self, searcher: Client, corpus: list[Document]
    ) -> None:
        """?q=a&q=b searches for b, as Django's QueryDict.get does."""
        data = searcher.get("/api/search?q=zzz&q=vacation&mode=keyword").json()
        assert data["query"] == "vacation"
        assert [r["id"] for r in data["results"]] == [corpus[0].pk]

    @pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
    def test_other_methods_are_405(self, searcher: Client, method: str) -> None:
        """The API only reads."""
        response = getattr(searcher, method)("/api/search?q=vacation")
        assert response.status_code == 405
        assert response.json()["error"] == "Method not allowed; use GET."

    @pytest.mark.parametrize(
        "path", ["/documents/99999999999999999999/", "/api/documents/99999999999999999999"]
    )
    def test_out_of_range_ids_are_404(self, searcher: Client, path: str) -> None:
        """Ids beyond bigint are simply not found."""
        assert searcher.get(path).status_code == 404

    @pytest.mark.parametrize(
        "query",
        [
            "from_search=99999999999999999999&rank=1",
            "from_search=abc&rank=-1",
            "from_search={search}&rank=99999999999999999999",
            "from_search={search}&rank=0",
        ],
    )
    def test_forged_click_parameters_are_ignored(
        self, searcher: Client, corpus: list[Document], query: str
    ) -> None:
        """Bad click-tracking parameters never break the document page."""
        search_id = searcher.get("/api/search", {"q": "vacation"}).json()["search_id"]
        path = f"/documents/{corpus[0].pk}/?{query.format(search=search_id)}"
        assert searcher.get(path).status_code == 200


# -- Uploads --------------------------------------------------------------------------

ADD_URL: Final = "/admin/documents/document/add/"
INLINE_MANAGEMENT: Final = {
    "chunks-TOTAL_FORMS": "0",
    "chunks-INITIAL_FORMS": "0",
    "chunks-MIN_NUM_FORMS": "0",
    "chunks-MAX_NUM_FORMS": "1000",
}


def make_pdf(text: str) -> bytes:
    """A one-page PDF whose text layer says ``text`` (ASCII)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % offset for offset in offsets)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


def make_docx(paragraph: str, *, extra: dict[str, bytes] | None = None) -> bytes:
    """A real DOCX, optionally with extra archive members."""
    document = docx.Document()
    document.add_paragraph(paragraph)
    out = io.BytesIO()
    document.save(out)
    if extra:
        with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, content in extra.items():
                archive.writestr(name, content)
    return out.getvalue()


def forge_declared_size(data: bytes, member: str, size: int) -> bytes:
    """Rewrite the central directory so that ``member`` claims ``size`` bytes."""
    name = member.encode()
    start = data.rindex(b"PK\x01\x02", 0, data.index(name, data.index(b"PK\x01\x02")) + 1)
    # Central directory header: the uncompressed size is at offset 24 (4 bytes).
    return data[: start + 24] + size.to_bytes(4, "little") + data[start + 28 :]


@pytest.fixture
def admin_session(
    client: Client, admin_user: User, settings: SettingsWrapper, tmp_path: Path
) -> Client:
    settings.MEDIA_ROOT = tmp_path / "media"
    client.force_login(admin_user)
    return client


def upload(admin_session: Client, name: str, data: bytes) -> Any:
    file = SimpleUploadedFile(name, data)
    return admin_session.post(
        ADD_URL, {"title": "", "text": "", "upload": file, **INLINE_MANAGEMENT}
    )


def upload_errors(response: Any) -> list[str]:
    assert response.status_code == 200  # The form again, with its errors.
    return [str(error) for error in response.context["adminform"].form.errors["upload"]]


class TestUploads:
    def test_file_over_the_size_limit_is_refused(
        self, admin_session: Client, settings: SettingsWrapper
    ) -> None:
        """A file over DOCUMENTS_MAX_FILE_MB is refused with its size and the limit."""
        settings.DOCUMENTS_MAX_FILE_MB = 1
        response = upload(admin_session, "big.txt", b"word " * 300_000)  # 1.5 MB
        assert upload_errors(response) == ["File too large: 1.4 MB exceeds the 1 MB limit."]
        assert Document.objects.exists() is False

    def test_too_many_files_is_a_clear_400(
        self, admin_session: Client, settings: SettingsWrapper
    ) -> None:
        """More files than DATA_UPLOAD_MAX_NUMBER_FILES in one request is a 400 that says so."""
        settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
        files = [SimpleUploadedFile(f"f{i}.txt", b"Some text.") for i in range(3)]
        response = admin_session.post(
            ADD_URL, {"title": "", "text": "", "upload": files, **INLINE_MANAGEMENT}
        )
        assert response.status_code == 400
        assert "Too many files in one upload: at most 2 are accepted at a time." in (
            response.content.decode()
        )
        assert Document.objects.exists() is False

    @pytest.mark.parametrize("path", ["/search/", "/api/search"])
    def test_other_bad_requests_are_explained(self, searcher: Client, path: str) -> None:
        """Other 400s (here a forged Host header) get a message too; JSON under /api/."""
        response = searcher.get(path, {"q": "x"}, HTTP_HOST="evil.example")
        assert response.status_code == 400
        if path.startswith("/api/"):
            assert response.json() == {"error": "The request could not be understood."}
        else:
            assert "The request could not be understood." in response.content.decode()

    def test_pdf_named_txt_is_read_as_pdf(self, admin_session: Client) -> None:
        """The content decides: a PDF renamed .txt is read as a PDF."""
        response = upload(admin_session, "report.txt", make_pdf("Quarterly revenue report"))
        assert response.status_code == 302
        document = Document.objects.get()
        assert document.source_type == Document.SourceType.PDF
        assert "Quarterly revenue report" in document.text

    def test_html_named_pdf_is_refused(self, admin_session: Client) -> None:
        """An HTML page saved as .pdf is refused, not indexed as the report."""
        page = b"<!doctype html><html><body><h1>502 Bad Gateway</h1></body></html>"
        response = upload(admin_session, "report.pdf", page)
        assert upload_errors(response) == [
            "Could not read report.pdf: not a valid PDF: the file does not start with %PDF-."
        ]
        assert Document.objects.exists() is False

    def test_zip_bomb_docx_upload_is_refused(self, admin_session: Client) -> None:
        """A DOCX whose members claim gigabytes is refused before it is expanded."""
        data = forge_declared_size(make_docx("Hi."), "word/document.xml", 4_000_000_000)
        response = upload(admin_session, "bomb.docx", data)
        assert upload_errors(response) == [
            "Could not read bomb.docx: archive too large when uncompressed (possible zip bomb)."
        ]


# -- Imports ---------------------------------------------------------------------------

_SUMMARY: Final = re.compile(
    r"Import finished: (\d+) imported, (\d+) updated, (\d+) unchanged, (\d+) failed\."
)


def run_import(capture: CaptureCallbacks, *paths: Path) -> tuple[tuple[int, ...], str]:
    """Run import_documents with indexing; return the summary counts and the output."""
    out = StringIO()
    with capture(execute=True):
        call_command("import_documents", *map(str, paths), no_progress=True, stdout=out)
    output = out.getvalue()
    match = _SUMMARY.search(output)
    assert match is not None, output
    return tuple(int(n) for n in match.groups()), output


class TestImportLimits:
    def test_zip_bombs_are_refused_and_the_import_goes_on(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        django_capture_on_commit_callbacks: CaptureCallbacks,
    ) -> None:
        """Archives expanding too far are refused with a reason; good files still import."""
        monkeypatch.setattr(limits, "MAX_ZIP_UNCOMPRESSED_BYTES", 2 * 1024 * 1024)
        (tmp_path / "dense.docx").write_bytes(
            make_docx("Dense.", extra={"word/media/pad.bin": b"\0" * (3 * 1024 * 1024)})
        )
        (tmp_path / "forged.docx").write_bytes(
            forge_declared_size(make_docx("Forged."), "word/document.xml", 4_000_000_000)
        )
        (tmp_path / "good.docx").write_bytes(make_docx("Laptops are issued on day one."))
        counts, output = run_import(django_capture_on_commit_callbacks, tmp_path)
        assert counts == (1, 0, 0, 2)
        assert output.count("archive too large when uncompressed (possible zip bomb)") == 2
        assert Document.objects.get().text == "Laptops are issued on day one."

    def test_legacy_korean_files_import_and_latin1_is_refused(
        self, tmp_path: Path, django_capture_on_commit_callbacks: CaptureCallbacks
    ) -> None:
        """CP949/EUC-KR .txt and .csv files import intact; undeclared Latin-1 gets a reason."""
        notice = "휴가 신청 방법 안내 문서입니다."
        (tmp_path / "notice.txt").write_bytes(notice.encode("cp949"))
        (tmp_path / "leave.csv").write_bytes("이름,남은 연차\n김민수,12\n".encode("euc-kr"))
        (tmp_path / "menu.txt").write_bytes(b"caf\xe9 au lait")
        counts, output = run_import(django_capture_on_commit_callbacks, tmp_path)
        assert counts == (2, 0, 0, 1), output
        assert (
            "menu.txt: not valid UTF-8 text (invalid byte 0xe9 at offset 3) "
            "and no other encoding fits" in output
        )
        assert dict(Document.objects.values_list("original_filename", "text")) == {
            "notice.txt": notice,
            "leave.csv": "이름,남은 연차\n김민수,12",
        }

    @pytest.mark.parametrize(
        "line",
        [
            pytest.param(" ".join(["needle", *["abcdefghij" * 20] * 27_000]), id="long-words"),
            pytest.param("needle " + "x" * 5_300_000, id="one-huge-word"),
        ],
    )
    def test_five_megabyte_single_line(
        self,
        searcher: Client,
        tmp_path: Path,
        settings: SettingsWrapper,
        django_capture_on_commit_callbacks: CaptureCallbacks,
        line: str,
    ) -> None:
        """A 5 MB file without a line break imports, is indexed and can be searched."""
        settings.DOCUMENTS_MAX_FILE_MB = 6
        (tmp_path / "line.txt").write_text(line[: 5 * 1024 * 1024])
        counts, output = run_import(django_capture_on_commit_callbacks, tmp_path)
        assert counts == (1, 0, 0, 0), output
        document = Document.objects.get()
        assert document.status == Document.Status.READY
        assert len(document.text) == 5 * 1024 * 1024
        for mode in MODES:
            response = searcher.get("/api/search", {"q": "needle", "mode": mode})
            assert response.status_code == 200
            results = response.json()["results"]
            assert [r["id"] for r in results] == [document.pk]
            assert len(results[0]["snippet"]) < 2000
        assert searcher.get(f"/documents/{document.pk}/").status_code == 200
