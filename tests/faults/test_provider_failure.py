"""The embedding provider failing, in-process with the eager task.

1. The new model's provider fails halfway through a batch, or is down, while
   a collection is re-embedded: documents stay saved, their status shows the
   failure, attempts back off, and they become ready once the provider is
   back. A document keeps its complete old index (searched meanwhile) and
   has at most one complete new set beside it, never half of one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pytest
from django.core.management import call_command

from documents.embeddings import EmbeddingProviderError, FakeProvider, set_embedder
from documents.models import Document
from documents.services import document_create
from documents.services import indexing as embed_module
from documents.tasks import documents_embed as documents_embed_task
from search.ranking.selectors import search_hits
from tests.faults.helpers import ChunkRow, assert_one_complete_chunk_set, chunk_rows, policy_text

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from contextlib import AbstractContextManager

    from django.contrib.auth.models import User

    from documents.embeddings import Vectors

    CaptureCallbacks = Callable[..., AbstractContextManager[list[Callable[[], None]]]]


class OutageProvider(FakeProvider):
    """Embeds in requests of a few texts, like a remote API.

    Its first ``failing_calls`` calls lose the connection halfway: the first
    half of the texts are embedded, then the next request fails. ``on_call``
    runs at the start of every call (to check what the database holds then).
    """

    request_size = 4

    name = "fake-model-b"

    def __init__(self, failing_calls: int, on_call: Callable[[], None] = lambda: None) -> None:
        self.failing_calls = failing_calls
        self.on_call = on_call
        self.calls = 0
        self.embedded = 0

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        self.calls += 1
        self.on_call()
        parts = []
        for start in range(0, len(texts), self.request_size):
            if self.calls <= self.failing_calls and start >= len(texts) // 2:
                raise EmbeddingProviderError(
                    f"connection reset by peer after {start} of {len(texts)} texts"
                )
            batch = texts[start : start + self.request_size]
            parts.append(super().embed_texts(batch))
            self.embedded += len(batch)
        return np.vstack(parts)


@dataclass
class RetrySnapshot:
    """What the documents looked like when a retry was scheduled."""

    countdown: float | None
    statuses: set[str]
    errors: list[str]


@pytest.mark.django_db
class TestProviderFailure:
    """In-process: the eager task with the new model's provider failing halfway."""

    TOPICS = ("leave", "travel", "security", "equipment")
    NEW_MODEL = OutageProvider.name

    @pytest.fixture
    def switching(
        self, django_capture_on_commit_callbacks: CaptureCallbacks
    ) -> dict[int, list[ChunkRow]]:
        """Four documents indexed by the old model: {id: its indexed (old) chunks}."""
        with django_capture_on_commit_callbacks(execute=True):
            documents = [
                document_create(title=f"{topic.title()} policy", text=policy_text(topic))
                for topic in self.TOPICS
            ]
        old = {}
        for document in documents:
            assert_one_complete_chunk_set(document.pk)
            old[document.pk] = chunk_rows(document.pk)
            assert len(old[document.pk]) > 1
        return old

    def assert_old_and_whole(self, old: dict[int, list[ChunkRow]]) -> None:
        """Each document keeps its complete old index; a new set, if any, is complete."""
        for document_id, old_rows in old.items():
            assert chunk_rows(document_id, FakeProvider.name) == old_rows
            if chunk_rows(document_id, self.NEW_MODEL):
                assert_one_complete_chunk_set(document_id, self.NEW_MODEL, live=False)

    def spy_on_retries(
        self, monkeypatch: pytest.MonkeyPatch, old: dict[int, list[ChunkRow]]
    ) -> tuple[list[RetrySnapshot], list[tuple]]:
        """Record each retry (its countdown, the documents' state) and each backoff."""
        import celery.app.autoretry as autoretry

        retries: list[RetrySnapshot] = []
        backoffs: list[tuple] = []
        real_retry = documents_embed_task.retry
        real_backoff = autoretry.get_exponential_backoff_interval

        def retry(*args: object, **kwargs: object) -> object:
            documents = Document.objects.filter(pk__in=old)
            retries.append(
                RetrySnapshot(
                    countdown=kwargs.get("countdown"),  # type: ignore[arg-type]
                    statuses=set(documents.values_list("status", flat=True)),
                    errors=list(documents.values_list("last_error", flat=True)),
                )
            )
            self.assert_old_and_whole(old)
            return real_retry(*args, **kwargs)

        def backoff(**kwargs: object) -> int:
            countdown = real_backoff(**kwargs)
            backoffs.append(
                (
                    kwargs["factor"],
                    kwargs["retries"],
                    kwargs["maximum"],
                    kwargs["full_jitter"],
                    countdown,
                )
            )
            return countdown

        monkeypatch.setattr(documents_embed_task, "retry", retry)
        monkeypatch.setattr(autoretry, "get_exponential_backoff_interval", backoff)
        return retries, backoffs

    def test_failure_halfway_is_retried_with_backoff_until_the_provider_is_back(
        self, switching: dict[int, list[ChunkRow]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        retries, backoffs = self.spy_on_retries(monkeypatch, switching)
        provider = OutageProvider(
            failing_calls=2, on_call=lambda: self.assert_old_and_whole(switching)
        )
        set_embedder(provider)
        real_store = embed_module._store

        def store(*args: object, **kwargs: object) -> int:
            stored = real_store(*args, **kwargs)  # type: ignore[arg-type]
            self.assert_old_and_whole(switching)  # Between two documents' transactions.
            return stored

        monkeypatch.setattr(embed_module, "_store", store)

        documents_embed_task.apply(args=[list(switching)])

        assert provider.calls == 3  # Two attempts failed halfway, the third worked.
        assert provider.embedded > 0
        # While it was retrying every document was pending, saying why.
        assert [r.statuses for r in retries] == [{Document.Status.PENDING}] * 2
        for attempt, retry in enumerate(retries, start=1):
            assert all(
                f"embedding provider failed (attempt {attempt}), retrying" in error
                and "connection reset by peer" in error
                for error in retry.errors
            ), retry.errors
        # Exponential backoff: 2 s, 4 s, ... (full jitter), capped at 5 minutes.
        assert [(f, r, m, j) for f, r, m, j, _ in backoffs] == [
            (2, 0, 300, True), (2, 1, 300, True),
        ]  # fmt: skip
        assert [r.countdown for r in retries] == [c for *_, c in backoffs]
        assert all(0 <= c <= 2 * 2**r for _, r, _, _, c in backoffs)
        # The new model covers the collection: its index is live, the old one gone.
        for document_id, old_rows in switching.items():
            assert_one_complete_chunk_set(document_id, self.NEW_MODEL)
            assert Document.objects.get(pk=document_id).last_error == ""
            assert not {row[0] for row in old_rows} & {row[0] for row in chunk_rows(document_id)}

    def test_provider_down_fails_documents_keeps_old_index_searchable_then_recovers(
        self,
        switching: dict[int, list[ChunkRow]],
        monkeypatch: pytest.MonkeyPatch,
        admin_user: User,
        django_capture_on_commit_callbacks: CaptureCallbacks,
    ) -> None:
        retries, _ = self.spy_on_retries(monkeypatch, switching)
        provider = OutageProvider(
            failing_calls=100, on_call=lambda: self.assert_old_and_whole(switching)
        )
        set_embedder(provider)

        documents_embed_task.apply(args=[list(switching)])

        assert provider.calls == 6  # The first attempt and five retries.
        assert len(retries) == 5
        for document_id, old_rows in switching.items():
            document = Document.objects.get(pk=document_id)
            assert document.status == Document.Status.FAILED
            assert "embedding provider failed 6 times, gave up" in document.last_error
            assert "connection reset by peer" in document.last_error
            assert chunk_rows(document_id) == old_rows  # The old index, complete, alone.
            assert document.embedding_model == FakeProvider.name
        # The old index still answers searches, with queries embedded by its model.
        for mode in ("keyword", "semantic", "hybrid"):
            hits = search_hits(query="security request portal", mode=mode, user=admin_user)
            assert set(switching) <= {hit.document_id for hit in hits}, mode
        old_chunk_ids = {row[0] for rows in switching.values() for row in rows}
        semantic = search_hits(query="security request", mode="semantic", user=admin_user)
        assert {hit.chunk_id for hit in semantic} <= old_chunk_ids

        # The provider is back: re-embedding the failed documents switches them over.
        provider.failing_calls = 0
        with django_capture_on_commit_callbacks(execute=True):
            call_command("reembed", "--failed", "--no-progress", stdout=sys.stderr)
        for document_id in switching:
            assert_one_complete_chunk_set(document_id, self.NEW_MODEL)

    def test_a_bad_vector_fails_only_its_document_which_keeps_its_old_chunks(
        self, switching: dict[int, list[ChunkRow]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failure while storing one document's chunks (a NaN from the provider) rolls
        back that document's new set: no document is left half-chunked, and the one that
        failed holds the cut-over back (the others stay staged)."""
        poisoned = Document.objects.get(pk__in=switching, text__contains="equipment").pk

        class NaNProvider(FakeProvider):
            name = TestProviderFailure.NEW_MODEL

            def embed_texts(self, texts: Sequence[str]) -> Vectors:
                vectors = super().embed_texts(texts)
                for row, text in enumerate(texts):
                    if "equipment" in text and row % 2:
                        vectors[row, 0] = np.nan  # One bad vector in the middle.
                return vectors

        set_embedder(NaNProvider())
        documents_embed_task.apply(args=[list(switching)])

        for document_id, old_rows in switching.items():
            if document_id == poisoned:
                document = Document.objects.get(pk=poisoned)
                assert document.status == Document.Status.FAILED
                assert document.last_error.startswith("indexing failed:")
                assert chunk_rows(poisoned) == old_rows
            else:
                assert chunk_rows(document_id, FakeProvider.name) == old_rows
                assert_one_complete_chunk_set(document_id, self.NEW_MODEL, live=False)
