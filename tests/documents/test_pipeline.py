"""The indexing pipeline end to end: save, queue after commit, chunk, embed, store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.core.management import call_command

from documents.analysis import analyze
from documents.embeddings import EmbeddingProviderError, FakeProvider, set_embedder
from documents.ingestion import split_sentences
from documents.models import Chunk, Document, DocumentTerm, content_hash_of
from documents.services import (
    document_create,
    document_update,
    documents_embed,
    documents_mark_failed,
    documents_reembed,
)
from documents.tasks import documents_embed as documents_embed_task
from search.ranking.selectors import search_hits
from tests.factories import make_document

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from contextlib import AbstractContextManager

    from django.contrib.auth.models import Group
    from pytest_django.fixtures import Settings as SettingsWrapper

    from documents.embeddings import Vectors

    CaptureCallbacks = Callable[..., AbstractContextManager[list[Callable[[], None]]]]

pytestmark = pytest.mark.django_db

ENGLISH_TEXT = (
    "Annual leave requests go through the HR portal. Managers approve them within "
    "three working days. Unused leave expires at the end of March.\n\n"
    "Remote work is allowed two days a week. Employees agree the days with their "
    "team lead. Equipment for home offices is reimbursed up to a fixed budget."
)
KOREAN_SENTENCES = (
    "연차 휴가는 인사 포털에서 신청합니다.",
    "관리자는 영업일 기준 사흘 안에 승인합니다.",
    "사용하지 않은 휴가는 삼월 말에 소멸됩니다.",
    "재택근무는 일주일에 이틀까지 허용됩니다.",
    "근무일은 팀장과 협의하여 정하세요.",
    "홈 오피스 장비는 정해진 예산 안에서 환급됩니다.",
    "보안 교육은 매년 한 번 반드시 이수해야 해요.",
    "출장 경비는 영수증을 첨부하여 청구하죠.",
)


def long_english_text(paragraphs: int = 12) -> str:
    """Return a multi-paragraph English text far longer than one chunk."""
    return "\n\n".join(
        f"Section {n} covers policy area number {n}. " + ENGLISH_TEXT for n in range(paragraphs)
    )


def chunk_ids(document: Document) -> list[int]:
    return list(document.chunks.order_by("position").values_list("pk", flat=True))


def assert_index_matches_text(document: Document, model_name: str) -> None:
    """The stored chunks are exact, ordered slices of the document's current text."""
    document.refresh_from_db()
    chunks = list(document.chunks.order_by("position"))
    assert chunks
    assert [chunk.position for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text == document.text[chunk.start_offset : chunk.end_offset]
        assert chunk.embedding_model == model_name
    assert document.status == Document.Status.READY
    assert document.embedded_hash == document.content_hash
    assert document.embedding_model == model_name
    # BM25 reads the length from the postings: it must be the document's own.
    lengths = set(document.terms.values_list("doc_length", flat=True))
    assert lengths == {document.term_count}


class FailingProvider(FakeProvider):
    """A provider whose service is down: every call fails and is counted."""

    def __init__(self) -> None:
        self.calls = 0

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        self.calls += 1
        raise EmbeddingProviderError("service unavailable (HTTP 503)")


class RenamedProvider(FakeProvider):
    """The fake embedder under another model name (a model upgrade)."""

    name = "fake-hash-384-v2"


class TestSaveQueuesIndexing:
    def test_saved_document_is_indexed_after_commit(
        self, django_capture_on_commit_callbacks: CaptureCallbacks, fake_embedder: FakeProvider
    ) -> None:
        """A created document is chunked, embedded and posted once the transaction commits."""
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            document = document_create(title="Leave policy", text=long_english_text(3))
        assert len(callbacks) == 1
        assert_index_matches_text(document, fake_embedder.name)
        assert document.embedding is not None
        assert len(document.embedding) == fake_embedder.dimensions
        terms = set(DocumentTerm.objects.filter(document=document).values_list("term", flat=True))
        assert set(analyze("annual leave requests")) <= terms
        assert document.term_count > 0
        assert document.last_error == ""
        assert document.embedded_at is not None

    def test_nothing_runs_before_commit(
        self, django_capture_on_commit_callbacks: CaptureCallbacks
    ) -> None:
        """Until the transaction commits the document stays pending, with one task
        waiting; it is searchable by keyword already (chunks and postings, no vectors)."""
        with django_capture_on_commit_callbacks() as callbacks:
            document = document_create(title="Leave policy", text=ENGLISH_TEXT)
        assert len(callbacks) == 1
        document.refresh_from_db()
        assert document.status == Document.Status.PENDING
        assert document.chunks.exists() is True
        assert document.chunks.filter(embedding__isnull=False).exists() is False
        assert DocumentTerm.objects.filter(document=document).exists() is True
        assert document.embedding is None
        assert document.embedded_hash == document.content_hash


class TestIdempotence:
    def test_embedding_twice_does_not_rewrite_chunks(self) -> None:
        """A document already indexed from its current text is skipped."""
        document = make_document("Leave policy", long_english_text(2))
        before = chunk_ids(document)
        assert documents_embed(document_ids=[document.pk]) == 0
        assert chunk_ids(document) == before

    def test_forced_embedding_replaces_chunks(self) -> None:
        """``force`` re-indexes even a current document, with one set of positions."""
        document = make_document("Leave policy", long_english_text(2))
        before = chunk_ids(document)
        assert documents_embed(document_ids=[document.pk], force=True) == 1
        after = chunk_ids(document)
        assert set(before).isdisjoint(after)
        assert len(after) == len(before)

    def test_editing_text_requeues_and_replaces_chunks(
        self, django_capture_on_commit_callbacks: CaptureCallbacks, fake_embedder: FakeProvider
    ) -> None:
        """New text replaces the old chunks entirely; positions run 0..n-1 once."""
        document = make_document("Leave policy", long_english_text(4))
        before = chunk_ids(document)
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            document_update(
                document=document,
                text="Parental leave is twelve months. It can be split in two parts.",
            )
        assert len(callbacks) == 1
        assert_index_matches_text(document, fake_embedder.name)
        assert Chunk.objects.filter(pk__in=before).exists() is False
        assert "Parental leave" in document.chunks.get(position=0).text

    def test_editing_only_tags_queues_nothing(
        self, django_capture_on_commit_callbacks: CaptureCallbacks
    ) -> None:
        """Tags are not indexed content, so changing them does not re-embed."""
        document = make_document("Leave policy", ENGLISH_TEXT)
        before = chunk_ids(document)
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            document_update(document=document, tags=["hr", "policy"])
        assert callbacks == []
        document.refresh_from_db()
        assert document.status == Document.Status.READY
        assert chunk_ids(document) == before


class TestProviderFailure:
    def test_failed_reembed_keeps_the_old_vectors(self, fake_embedder: FakeProvider) -> None:
        """A re-embed that fails for good leaves the document FAILED with a reason and
        its old index (chunks and vectors) searchable."""
        document = make_document("Leave policy", ENGLISH_TEXT)
        old_chunks = list(document.chunks.values_list("pk", "text", "embedding_model"))
        failing = FailingProvider()
        set_embedder(failing)
        documents_embed_task.apply(args=[[document.pk], True])
        document.refresh_from_db()
        assert failing.calls == 6  # The first attempt and five retries.
        assert document.status == Document.Status.FAILED
        assert "gave up" in document.last_error
        assert list(document.chunks.values_list("pk", "text", "embedding_model")) == old_chunks
        assert document.chunks.filter(embedding__isnull=True).exists() is False
        assert document.embedding is not None

    def test_failure_keeps_keyword_index_and_reembed_recovers(
        self, django_capture_on_commit_callbacks: CaptureCallbacks, fake_embedder: FakeProvider
    ) -> None:
        """An edit is searchable by keyword at once; when the provider then fails for
        good the document is FAILED with a reason and keeps its keyword index, and a
        re-embed with a working provider makes it READY again."""
        document = make_document("Leave policy", ENGLISH_TEXT)
        document_update(
            document=document, text="Parental leave is twelve months. It can be split in two parts."
        )  # Its on-commit task is dropped: the test never commits.
        reader = User(username="reader", is_superuser=True)
        hits = search_hits(query="parental leave", mode="keyword", user=reader)
        assert [hit.document_id for hit in hits] == [document.pk]
        failing = FailingProvider()
        set_embedder(failing)
        documents_embed_task.apply(args=[[document.pk]])

        document.refresh_from_db()
        assert failing.calls == 6  # The first attempt and five retries.
        assert document.status == Document.Status.FAILED
        assert "gave up" in document.last_error
        assert "service unavailable (HTTP 503)" in document.last_error
        assert "Parental leave" in document.chunks.get(position=0).text
        assert document.chunks.filter(embedding__isnull=False).exists() is False
        assert document.embedded_hash == document.content_hash
        assert set(analyze("parental")) <= set(
            DocumentTerm.objects.filter(document=document).values_list("term", flat=True)
        )

        set_embedder(fake_embedder)
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            assert documents_reembed(document_ids=[document.pk]) == 1
        assert len(callbacks) == 1
        assert_index_matches_text(document, fake_embedder.name)
        assert document.last_error == ""
        assert "Parental leave" in document.chunks.get(position=0).text

    def test_chunking_failure_marks_only_that_document(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A document that cannot be prepared fails alone; the rest of the batch is indexed."""
        good = make_document("Good", ENGLISH_TEXT, index=False)
        bad = make_document("Bad", "Some other text entirely.", index=False)

        from documents.services import indexing as embed_module

        real_chunk_text = embed_module.chunk_text

        def chunk_text(text: str, **kwargs: object) -> object:
            if text == bad.text:
                raise ValueError("tokenizer exploded")
            return real_chunk_text(text, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(embed_module, "chunk_text", chunk_text)
        assert documents_embed(document_ids=[good.pk, bad.pk], force=True) == 1
        good.refresh_from_db()
        bad.refresh_from_db()
        assert good.status == Document.Status.READY
        assert bad.status == Document.Status.FAILED
        assert bad.last_error == "chunking failed: tokenizer exploded"

    def test_attempts_before_the_last_leave_the_document_pending(self) -> None:
        """A failed attempt that will be retried shows its error but is not FAILED."""
        document = make_document("Pending retry", ENGLISH_TEXT, index=False)
        documents_mark_failed(document_ids=[document.pk], error="attempt 1 failed", final=False)
        document.refresh_from_db()
        assert document.status == Document.Status.PENDING
        assert document.last_error == "attempt 1 failed"

    def test_a_late_failure_does_not_hide_a_current_index(self) -> None:
        """An older task failing after a newer one indexed the text changes nothing."""
        document = make_document("Indexed", ENGLISH_TEXT)
        documents_mark_failed(document_ids=[document.pk], error="stale attempt failed")
        document.refresh_from_db()
        assert document.status == Document.Status.READY
        assert document.last_error == ""


class TestConcurrentEdit:
    def test_stale_embedding_is_not_stored(self, fake_embedder: FakeProvider) -> None:
        """Vectors of text that changed meanwhile are dropped; the next run stores the new text."""
        document = make_document("Leave policy", ENGLISH_TEXT, index=False)
        old_text = document.text
        new_text = "Parental leave is twelve months. It can be split in two parts."

        class EditingProvider(FakeProvider):
            """Simulates an editor saving new text while the model runs."""

            def embed_texts(self, texts: Sequence[str]) -> Vectors:
                Document.objects.filter(pk=document.pk).update(
                    text=new_text, content_hash=content_hash_of(document.title, new_text)
                )
                return super().embed_texts(texts)

        set_embedder(EditingProvider())
        assert documents_embed(document_ids=[document.pk]) == 0
        document.refresh_from_db()
        assert document.chunks.filter(embedding__isnull=False).exists() is False
        assert document.status != Document.Status.READY
        assert document.embedded_hash == content_hash_of(document.title, old_text)
        assert document.embedded_hash != document.content_hash

        set_embedder(fake_embedder)
        assert documents_embed(document_ids=[document.pk]) == 1
        assert_index_matches_text(document, fake_embedder.name)
        assert document.text == new_text

    def test_edit_saved_during_embedding_is_indexed_by_its_own_task(
        self, django_capture_on_commit_callbacks: CaptureCallbacks, fake_embedder: FakeProvider
    ) -> None:
        """A real save during embedding queues another run, which indexes the final text."""
        document = make_document("Leave policy", ENGLISH_TEXT, index=False)
        new_text = "Parental leave is twelve months. It can be split in two parts."
        edits: list[int] = []

        class EditingProvider(FakeProvider):
            def embed_texts(self, texts: Sequence[str]) -> Vectors:
                if not edits:
                    edits.append(1)
                    editor_copy = Document.objects.get(pk=document.pk)
                    document_update(document=editor_copy, text=new_text)
                return super().embed_texts(texts)

        set_embedder(EditingProvider())
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            assert documents_embed(document_ids=[document.pk]) == 0
        assert len(callbacks) == 1
        assert_index_matches_text(document, fake_embedder.name)
        assert document.text == new_text
        assert all("HR portal" not in chunk.text for chunk in document.chunks.all())


class TestChunkBudget:
    def test_chunks_fit_the_model_window(self, fake_embedder: FakeProvider) -> None:
        """Every chunk of a long text fits the provider's token budget."""
        document = make_document("Handbook", long_english_text(12))
        chunks = list(document.chunks.all())
        assert len(chunks) > 5
        for chunk in chunks:
            assert chunk.token_count <= fake_embedder.max_tokens
            assert fake_embedder.count_tokens([chunk.text]) == [chunk.token_count]
            assert chunk.text == document.text[chunk.start_offset : chunk.end_offset]

    def test_chunks_leave_room_for_the_title(self) -> None:
        """Chunk plus title prefix fit the window of a model with room to spare."""

        class WiderProvider(FakeProvider):
            max_tokens = 160

        provider = WiderProvider()
        set_embedder(provider)
        title = "Employee handbook for the regional offices"
        document = make_document(title, long_english_text(12))
        [title_tokens] = provider.count_tokens([title])
        chunks = list(document.chunks.all())
        assert len(chunks) > 2
        assert max(chunk.token_count for chunk in chunks) > 64
        for chunk in chunks:
            assert chunk.token_count + title_tokens + 1 <= provider.max_tokens

    def test_chunk_size_follows_the_document_language(self) -> None:
        """A provider's per-language chunk size applies to documents of that
        language; the others keep its general size."""

        class PerLanguageProvider(FakeProvider):
            max_tokens = 300
            chunk_tokens = 80
            chunk_tokens_by_language = {"en": 280}

        set_embedder(PerLanguageProvider())
        english = make_document("Handbook", long_english_text(12))
        korean_text = "\n\n".join(
            " ".join(KOREAN_SENTENCES[(n + k) % len(KOREAN_SENTENCES)] for k in range(5))
            for n in range(10)
        )
        korean = make_document("인사 규정", korean_text)
        assert english.language == "en" and korean.language == "ko"
        english_tokens = list(english.chunks.values_list("token_count", flat=True))
        korean_tokens = list(korean.chunks.values_list("token_count", flat=True))
        assert max(english_tokens) > 80
        assert max(english_tokens) <= 280
        assert len(korean_tokens) > 2
        assert max(korean_tokens) <= 80

    def test_chunk_max_tokens_setting_caps_chunks(self, settings: SettingsWrapper) -> None:
        """CHUNK_MAX_TOKENS lowers the budget below the model's window."""
        settings.CHUNK_MAX_TOKENS = 20
        document = make_document("Handbook", long_english_text(2))
        token_counts = list(document.chunks.values_list("token_count", flat=True))
        assert len(token_counts) > 3
        assert max(token_counts) <= 20

    def test_korean_chunks_end_at_sentence_boundaries(self, fake_embedder: FakeProvider) -> None:
        """Korean sentences shorter than the budget are never cut inside."""
        text = "\n\n".join(
            " ".join(KOREAN_SENTENCES[(n + k) % len(KOREAN_SENTENCES)] for k in range(5))
            for n in range(10)
        )
        document = make_document("인사 규정", text)
        spans = split_sentences(text)
        starts = {start for start, _ in spans}
        ends = {end for _, end in spans}
        chunks = list(document.chunks.order_by("position"))
        assert len(chunks) > 1
        for chunk in chunks:
            assert chunk.text == text[chunk.start_offset : chunk.end_offset]
            assert chunk.start_offset in starts
            assert chunk.end_offset in ends
            assert chunk.token_count <= fake_embedder.max_tokens
        covered = "".join(text[c.start_offset : c.end_offset] for c in chunks)
        assert all(sentence in covered for sentence in KOREAN_SENTENCES)

    def test_oversized_korean_sentence_is_cut(self, fake_embedder: FakeProvider) -> None:
        """A single sentence longer than the budget is split, and offsets stay exact."""
        sentence = " ".join(["보안"] * 200) + "입니다."
        document = make_document("긴 문장", sentence)
        chunks = list(document.chunks.order_by("position"))
        assert len(chunks) > 1
        for chunk in chunks:
            assert chunk.token_count <= fake_embedder.max_tokens
            assert chunk.text == sentence[chunk.start_offset : chunk.end_offset]


class TestVisibility:
    @pytest.fixture
    def documents(self, user: User, other_user: User, hr_group: Group) -> dict[str, Document]:
        public = make_document("Public", "Everyone reads this.", index=False)
        hr_only = make_document("HR only", "Salaries.", index=False, groups=[hr_group])
        own = make_document("Own draft", "My notes.", index=False, owner=user, groups=[hr_group])
        foreign = make_document(
            "Other draft", "Their notes.", index=False, owner=other_user, groups=[hr_group]
        )
        return {"public": public, "hr_only": hr_only, "own": own, "foreign": foreign}

    @staticmethod
    def titles(user: object) -> set[str]:
        return set(Document.objects.visible_to(user).values_list("title", flat=True))  # type: ignore[arg-type]

    def test_superuser_sees_everything(
        self, documents: dict[str, Document], admin_user: User
    ) -> None:
        """Superusers see restricted documents of every group."""
        assert self.titles(admin_user) == {"Public", "HR only", "Own draft", "Other draft"}

    def test_user_sees_public_and_own(self, documents: dict[str, Document], user: User) -> None:
        """Outside the group a user sees unrestricted documents and their own."""
        assert self.titles(user) == {"Public", "Own draft"}

    def test_group_member_sees_group_documents(
        self, documents: dict[str, Document], other_user: User, hr_group: Group
    ) -> None:
        """Members see their group's documents."""
        assert self.titles(other_user) == {"Public", "Other draft"}
        other_user.groups.add(hr_group)
        assert self.titles(other_user) == {"Public", "HR only", "Own draft", "Other draft"}

    def test_anonymous_and_inactive_see_nothing(
        self, documents: dict[str, Document], user: User
    ) -> None:
        """Anonymous, missing and inactive users see no documents at all."""
        assert self.titles(AnonymousUser()) == set()
        assert self.titles(None) == set()
        user.is_active = False
        user.save()
        assert self.titles(user) == set()


class TestReembedCommand:
    @pytest.fixture
    def library(self) -> dict[str, Document]:
        ready = make_document("Ready", ENGLISH_TEXT)
        failed = make_document("Failed", "Expense claims need receipts.", index=False)
        documents_mark_failed(document_ids=[failed.pk], error="embedding provider failed")
        pending = make_document("Pending", "Travel is booked through the portal.", index=False)
        return {"ready": ready, "failed": failed, "pending": pending}

    def run(self, capture: CaptureCallbacks, **options: object) -> str:
        from io import StringIO

        out = StringIO()
        with capture(execute=True):
            call_command("reembed", no_progress=True, stdout=out, **options)
        return out.getvalue()

    def test_failed_requeues_only_failed_documents(
        self, library: dict[str, Document], django_capture_on_commit_callbacks: CaptureCallbacks
    ) -> None:
        """``--failed`` re-indexes failed documents and leaves the rest alone."""
        ready_chunks = chunk_ids(library["ready"])
        output = self.run(django_capture_on_commit_callbacks, failed=True)
        assert "Queued 1 document(s)." in output
        for document in library.values():
            document.refresh_from_db()
        assert library["failed"].status == Document.Status.READY
        assert library["failed"].last_error == ""
        assert library["pending"].status == Document.Status.PENDING
        assert chunk_ids(library["ready"]) == ready_chunks

    def test_failed_with_nothing_failed(
        self, django_capture_on_commit_callbacks: CaptureCallbacks
    ) -> None:
        """With no failed documents the command says so."""
        make_document("Ready", ENGLISH_TEXT)
        output = self.run(django_capture_on_commit_callbacks, failed=True)
        assert output.splitlines() == [
            "Nothing to re-embed.",
            "  fake-hash-384: 1 document(s) (configured, searched)",
        ]

    def test_all_reindexes_every_document(
        self,
        library: dict[str, Document],
        django_capture_on_commit_callbacks: CaptureCallbacks,
        fake_embedder: FakeProvider,
    ) -> None:
        """``--all`` rebuilds every document's chunks."""
        ready_chunks = chunk_ids(library["ready"])
        output = self.run(django_capture_on_commit_callbacks, all=True)
        assert "Queued 3 document(s)." in output
        for document in library.values():
            assert_index_matches_text(document, fake_embedder.name)
        assert set(ready_chunks).isdisjoint(chunk_ids(library["ready"]))

    def test_stale_reembeds_documents_of_another_model(
        self, django_capture_on_commit_callbacks: CaptureCallbacks
    ) -> None:
        """After a model change ``--stale`` re-embeds with the new model."""
        documents = [make_document(f"Doc {n}", f"{ENGLISH_TEXT} Number {n}.") for n in range(3)]
        renamed = RenamedProvider()
        set_embedder(renamed)
        output = self.run(django_capture_on_commit_callbacks, stale=True)
        assert "Queued 3 document(s)." in output
        for document in documents:
            assert_index_matches_text(document, renamed.name)
        assert set(Chunk.objects.values_list("embedding_model", flat=True)) == {renamed.name}
        assert self.run(django_capture_on_commit_callbacks, stale=True).splitlines() == [
            "Nothing to re-embed.",
            f"  {renamed.name}: 3 document(s) (configured, searched)",
        ]
