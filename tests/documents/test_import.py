"""Importing files: the import_documents command and the admin upload."""

from __future__ import annotations

import io
import os
from io import StringIO
from typing import TYPE_CHECKING

import docx
import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from pypdf import PdfWriter

from documents.models import Chunk, Document
from documents.services import documents_embed, documents_mark_failed
from tests.factories import make_document

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from pathlib import Path

    from django.contrib.auth.models import User
    from django.test import Client
    from pytest_django import DjangoAssertNumQueries
    from pytest_django.fixtures import Settings as SettingsWrapper

    CaptureCallbacks = Callable[..., AbstractContextManager[list[Callable[[], None]]]]

pytestmark = pytest.mark.django_db

GOOD_FILES = {
    "leave.txt": "Annual leave\n\nAnnual leave requests go through the HR portal. "
    "Managers approve them within three working days.",
    "remote.md": "# Remote work\n\nRemote work is allowed **two days** a week.\n\n"
    "- Agree the days with your team lead.\n- Keep your calendar up to date.\n",
    "expenses.html": "<!doctype html><html><head><title>Expenses</title></head><body>"
    "<h1>Expenses</h1><p>Expense claims need receipts attached.</p>"
    "<script>alert('not indexed')</script></body></html>",
}
DOCX_PARAGRAPH = "New employees receive a laptop on their first day."


def encrypted_pdf() -> bytes:
    """Return a one-page PDF that needs the password "secret" to open."""
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt("secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def write_good_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in GOOD_FILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    document = docx.Document()
    document.add_heading("Onboarding", level=1)
    document.add_paragraph(DOCX_PARAGRAPH)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Badge"
    table.rows[0].cells[1].text = "Reception desk"
    document.save(str(folder / "onboarding.docx"))


def write_bad_files(folder: Path, *, huge: bool = True) -> dict[str, str]:
    """Write files that cannot be imported; return the expected reason per name."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "garbage.bin").write_bytes(os.urandom(256))
    (folder / "garbage.txt").write_bytes(os.urandom(4096) + b"\x00")
    (folder / "latin1.txt").write_bytes(b"caf\xe9 au lait")
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.4 garbage")
    (folder / "encrypted.pdf").write_bytes(encrypted_pdf())
    reasons = {
        "empty.txt": "empty file",
        "garbage.bin": "unsupported file type '.bin'",
        "garbage.txt": "binary content, not text",
        "latin1.txt": "not valid UTF-8 text (invalid byte 0xe9 at offset 3)",
        "corrupt.pdf": "corrupt or unreadable PDF",
        "encrypted.pdf": "encrypted PDF (password required)",
    }
    if huge:
        with (folder / "huge.txt").open("wb") as handle:
            line = b"All work and no play makes Jack a dull boy.\n" * 1000
            for _ in range(50 * 1024 * 1024 // len(line) + 1):
                handle.write(line)
            handle.truncate(50 * 1024 * 1024)  # Exactly 50 MB.
        reasons["huge.txt"] = "file too large: 50.0 MB exceeds the 10.0 MB limit"
    return reasons


def run_import(capture: CaptureCallbacks, *args: str, **options: object) -> str:
    """Run import_documents with its indexing executed; return its output."""
    out = StringIO()
    with capture(execute=True):
        call_command("import_documents", *args, no_progress=True, stdout=out, **options)
    return out.getvalue()


def summary(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("Import finished"))


def failure_lines(output: str) -> dict[str, str]:
    """Map each failed file's name to its reason."""
    failures = {}
    for line in output.splitlines():
        if line.strip().startswith("failed: "):
            path, reason = line.strip().removeprefix("failed: ").split(": ", 1)
            failures[path.rsplit("/", 1)[-1]] = reason
    return failures


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    write_good_files(corpus)
    return corpus


class TestImportCommand:
    def test_imports_good_files_and_reports_bad_ones(
        self, folder: Path, django_capture_on_commit_callbacks: CaptureCallbacks
    ) -> None:
        """Readable files are imported and indexed; each bad file gets a clear reason."""
        reasons = write_bad_files(folder)
        output = run_import(django_capture_on_commit_callbacks, str(folder))

        assert summary(output) == (
            f"Import finished: 4 imported, 0 updated, 0 unchanged, {len(reasons)} failed."
        )
        failures = failure_lines(output)
        assert set(failures) == set(reasons)
        for name, reason in reasons.items():
            assert failures[name].startswith(reason), (name, failures[name])
        assert f"failed: {folder / 'empty.txt'}: empty file" in output

        documents = {d.original_filename: d for d in Document.objects.all()}
        assert set(documents) == {*GOOD_FILES, "onboarding.docx"}
        for document in documents.values():
            assert document.status == Document.Status.READY
            assert document.embedded_hash == document.content_hash
            assert document.chunks.exists()
            assert document.source_path.startswith(str(folder))
        assert documents["remote.md"].title == "Remote work"
        assert documents["remote.md"].source_type == Document.SourceType.MARKDOWN
        assert documents["expenses.html"].title == "Expenses"
        assert "not indexed" not in documents["expenses.html"].text
        assert DOCX_PARAGRAPH in documents["onboarding.docx"].text
        assert "Badge | Reception desk" in documents["onboarding.docx"].text
        assert documents["onboarding.docx"].source_type == Document.SourceType.DOCX

    def test_rerun_skips_unchanged_files(
        self, folder: Path, django_capture_on_commit_callbacks: CaptureCallbacks
    ) -> None:
        """A second import of the same folder changes nothing and duplicates nothing."""
        write_bad_files(folder, huge=False)
        run_import(django_capture_on_commit_callbacks, str(folder))
        count = Document.objects.count()
        chunk_ids = set(Chunk.objects.values_list("pk", flat=True))

        output = run_import(django_capture_on_commit_callbacks, str(folder))
        assert summary(output) == "Import finished: 0 imported, 0 updated, 4 unchanged, 6 failed."
        assert Document.objects.count() == count == 4
        assert set(Chunk.objects.values_list("pk", flat=True)) == chunk_ids

    def test_changed_file_updates_its_document(
        self, folder: Path, django_capture_on_commit_callbacks: CaptureCallbacks
    ) -> None:
        """A modified file updates the same document and re-indexes its new text."""
        run_import(django_capture_on_commit_callbacks, str(folder))
        document = Document.objects.get(original_filename="leave.txt")
        old_chunks = set(document.chunks.values_list("pk", flat=True))

        new_text = "Annual leave\n\nLeave is now approved automatically after two days."
        (folder / "leave.txt").write_text(new_text, encoding="utf-8")
        output = run_import(django_capture_on_commit_callbacks, str(folder))

        assert summary(output) == "Import finished: 0 imported, 1 updated, 3 unchanged, 0 failed."
        assert Document.objects.count() == 4
        document.refresh_from_db()
        assert document.text == new_text
        assert document.status == Document.Status.READY
        chunks = list(document.chunks.order_by("position"))
        assert old_chunks.isdisjoint(chunk.pk for chunk in chunks)
        assert "approved automatically" in " ".join(chunk.text for chunk in chunks)
        for chunk in chunks:
            assert chunk.text == document.text[chunk.start_offset : chunk.end_offset]

    def test_tag_option_tags_new_and_unchanged_documents(
        self, folder: Path, django_capture_on_commit_callbacks: CaptureCallbacks
    ) -> None:
        """``--tag`` tags imported documents and adds tags on a re-import."""
        run_import(django_capture_on_commit_callbacks, str(folder), tag=["HR"])
        assert all(tags == ["hr"] for tags in Document.objects.values_list("tags", flat=True))

        output = run_import(django_capture_on_commit_callbacks, str(folder), tag=["policy"])
        assert summary(output) == "Import finished: 0 imported, 0 updated, 4 unchanged, 0 failed."
        assert all(
            tags == ["hr", "policy"] for tags in Document.objects.values_list("tags", flat=True)
        )
        assert set(Document.objects.values_list("status", flat=True)) == {Document.Status.READY}

    def test_broken_reimport_keeps_the_stored_document(
        self, folder: Path, django_capture_on_commit_callbacks: CaptureCallbacks
    ) -> None:
        """A good file overwritten with garbage fails and leaves its document intact."""
        run_import(django_capture_on_commit_callbacks, str(folder))
        document = Document.objects.get(original_filename="leave.txt")
        chunks = list(document.chunks.values_list("pk", "text"))

        (folder / "leave.txt").write_bytes(os.urandom(2048) + b"\x00")
        output = run_import(django_capture_on_commit_callbacks, str(folder))

        assert summary(output) == "Import finished: 0 imported, 0 updated, 3 unchanged, 1 failed."
        assert failure_lines(output) == {"leave.txt": "binary content, not text"}
        stored = Document.objects.get(pk=document.pk)
        assert stored.text == document.text
        assert stored.file_hash == document.file_hash
        assert stored.status == Document.Status.READY
        assert list(stored.chunks.values_list("pk", "text")) == chunks

    def test_owner_option(
        self, folder: Path, user: User, django_capture_on_commit_callbacks: CaptureCallbacks
    ) -> None:
        """``--owner`` sets the owner of new documents."""
        run_import(django_capture_on_commit_callbacks, str(folder / "leave.txt"), owner="staff")
        assert Document.objects.get().owner == user


ADD_URL = "/admin/documents/document/add/"
CHANGELIST_URL = "/admin/documents/document/"
INLINE_MANAGEMENT = {
    "chunks-TOTAL_FORMS": "0",
    "chunks-INITIAL_FORMS": "0",
    "chunks-MIN_NUM_FORMS": "0",
    "chunks-MAX_NUM_FORMS": "1000",
}


@pytest.fixture
def admin_session(
    client: Client, admin_user: User, settings: SettingsWrapper, tmp_path: Path
) -> Client:
    settings.MEDIA_ROOT = tmp_path / "media"
    client.force_login(admin_user)
    return client


class TestAdminUpload:
    def test_upload_creates_and_indexes_a_document(
        self,
        admin_session: Client,
        admin_user: User,
        django_capture_on_commit_callbacks: CaptureCallbacks,
    ) -> None:
        """An uploaded Markdown file becomes a document with its text, queued and indexed."""
        upload = SimpleUploadedFile(
            "remote.md", GOOD_FILES["remote.md"].encode(), content_type="text/markdown"
        )
        data = {
            "title": "",
            "text": "",
            "tags": "hr, Remote",
            "upload": upload,
            **INLINE_MANAGEMENT,
        }
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = admin_session.post(ADD_URL, data, follow=True)
        assert response.status_code == 200
        assert len(callbacks) == 1
        document = Document.objects.get()
        assert document.title == "Remote work"
        assert "Remote work is allowed **two days** a week." in document.text
        assert document.original_filename == "remote.md"
        assert document.source_type == Document.SourceType.MARKDOWN
        assert document.tags == ["hr", "remote"]
        assert document.owner == admin_user
        assert document.status == Document.Status.READY
        assert document.chunks.exists()
        messages = [str(m) for m in get_messages(response.wsgi_request)]
        assert "“Remote work” is queued for indexing." in messages

    @pytest.mark.parametrize(
        ("name", "data", "reason"),
        [
            ("secret.pdf", encrypted_pdf(), "encrypted PDF (password required)"),
            ("broken.pdf", b"%PDF-1.4 garbage", "corrupt or unreadable PDF"),
        ],
    )
    def test_unreadable_upload_is_refused(
        self,
        admin_session: Client,
        name: str,
        data: bytes,
        reason: str,
        django_capture_on_commit_callbacks: CaptureCallbacks,
    ) -> None:
        """An unreadable PDF is refused with the reason and nothing is created."""
        upload = SimpleUploadedFile(name, data, content_type="application/pdf")
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = admin_session.post(
                ADD_URL, {"title": "", "text": "", "upload": upload, **INLINE_MANAGEMENT}
            )
        assert response.status_code == 200
        errors = response.context["adminform"].form.errors["upload"]
        assert errors[0].startswith(f"Could not read {name}: {reason}")
        assert f"Could not read {name}: {reason}" in response.content.decode()
        assert Document.objects.exists() is False
        assert callbacks == []

    def test_changelist_shows_status(self, admin_session: Client) -> None:
        """The changelist renders each document's status."""
        make_document("Ready doc", "Expense claims need receipts.")
        make_document("Waiting doc", "Travel is booked through the portal.", index=False)
        response = admin_session.get(CHANGELIST_URL)
        assert response.status_code == 200
        content = response.content.decode()
        assert "column-status_badge" in content
        assert ">Ready</span>" in content
        assert ">Pending</span>" in content

    def test_changelist_query_count_does_not_grow(self, admin_session: Client) -> None:
        """The changelist costs the same number of queries for 2 or 8 documents."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        def queries() -> int:
            with CaptureQueriesContext(connection) as context:
                assert admin_session.get(CHANGELIST_URL).status_code == 200
            return len(context.captured_queries)

        for n in range(2):
            make_document(f"Doc {n}", "Expense claims need receipts.", tags=["finance"])
        few = queries()
        for n in range(2, 8):
            make_document(f"Doc {n}", "Expense claims need receipts.", tags=["finance"])
        assert queries() == few

    def test_changelist_query_count_is_bounded(
        self, admin_session: Client, django_assert_max_num_queries: DjangoAssertNumQueries
    ) -> None:
        """15 or 30 documents with tags and chunks: the changelist costs the same 14 queries.

        The session, the user, the tag and group filters' choices, two counts
        (filtered and in all), the page of documents with their chunk counts,
        the date hierarchy's range and days, the embedding models' choices,
        and the embedding models' coverage above the list (documents per
        model, live and staged; those waiting for the configured model; the
        indexed total).
        """
        counts = []
        for start in (0, 15):
            documents = [
                make_document(
                    f"Doc {n}",
                    "Expense claims need receipts. " * 40,
                    tags=["finance", f"team-{n}"],
                    index=False,
                )
                for n in range(start, start + 15)
            ]
            documents_embed(document_ids=[document.pk for document in documents])
            assert Chunk.objects.filter(document__in=documents).count() >= len(documents)
            with django_assert_max_num_queries(14) as captured:
                response = admin_session.get(CHANGELIST_URL)
            assert response.status_code == 200
            assert response.context["cl"].result_count == start + 15
            counts.append(len(captured))
        assert counts[1] == counts[0]

    def test_reembed_action(
        self, admin_session: Client, django_capture_on_commit_callbacks: CaptureCallbacks
    ) -> None:
        """ "Re-embed selected documents" re-indexes them and says how many."""
        documents = [
            make_document("First", "Expense claims need receipts."),
            make_document("Second", "Travel is booked through the portal.", index=False),
        ]
        old_chunks = set(Chunk.objects.values_list("pk", flat=True))
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = admin_session.post(
                CHANGELIST_URL,
                {"action": "reembed_selected", "_selected_action": [d.pk for d in documents]},
                follow=True,
            )
        assert response.status_code == 200
        assert len(callbacks) == 1
        messages = [str(m) for m in get_messages(response.wsgi_request)]
        assert messages == ["Queued 2 document(s) for re-embedding."]
        for document in documents:
            document.refresh_from_db()
            assert document.status == Document.Status.READY
        assert old_chunks.isdisjoint(Chunk.objects.values_list("pk", flat=True))

    def test_failed_document_shows_its_error(self, admin_session: Client) -> None:
        """The change page of a failed document shows why it failed."""
        document = make_document("Broken", "Expense claims need receipts.", index=False)
        documents_mark_failed(
            document_ids=[document.pk],
            error="embedding provider failed 6 times, gave up: service unavailable",
        )
        response = admin_session.get(f"{CHANGELIST_URL}{document.pk}/change/")
        assert response.status_code == 200
        content = response.content.decode()
        assert "embedding provider failed 6 times, gave up: service unavailable" in content
        assert "Failed" in content
