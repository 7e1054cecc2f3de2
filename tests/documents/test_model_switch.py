"""Switching embedding models: search answers from the old model until the new one covers
the collection, never comparing a query with another model's vectors."""

from __future__ import annotations

from io import StringIO
from typing import TYPE_CHECKING

import pytest
from django.core.management import call_command
from django.urls import reverse

from documents.embeddings import FakeProvider, set_embedder
from documents.models import Chunk, Document
from documents.selectors import forget_search_model, model_coverage, search_model_name
from documents.services import document_update, documents_embed, documents_index_attempt
from search.analytics import recorded_search_settings
from search.ranking.backends.semantic import embed_query
from search.ranking.selectors import search_hits
from tests.factories import make_document

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.test import Client

pytestmark = pytest.mark.django_db

TEXTS = {
    "Vacation policy": "Employees take twenty days of paid vacation every year.",
    "Remote work": "Staff may work from home two days a week with approval.",
    "Expense claims": "Expense claims need receipts and a manager's approval.",
    "Password rules": "Passwords need twelve characters and change every ninety days.",
}


class FailingOn(FakeProvider):
    """Model B, unable to embed one document's text."""

    def __init__(self, marker: str) -> None:
        super().__init__(name="fake-b", seed=7)
        self.marker = marker

    def embed_texts(self, texts: list[str]) -> object:  # type: ignore[override]
        if any(self.marker in text for text in texts):
            raise ValueError("cannot embed this text")
        return super().embed_texts(texts)


@pytest.fixture
def model_a(fake_embedder: FakeProvider) -> FakeProvider:
    return fake_embedder


@pytest.fixture
def model_b() -> FakeProvider:
    return FakeProvider(name="fake-b", seed=7)


@pytest.fixture
def collection(model_a: FakeProvider) -> dict[str, Document]:
    """Four documents indexed by model A."""
    return {title: make_document(title, text) for title, text in TEXTS.items()}


def semantic(query: str, admin_user: User) -> list[tuple[int, str]]:
    """(document, model of the chunk it was found by), best first."""
    forget_search_model()
    hits = search_hits(query=query, mode="semantic", user=admin_user, limit=10)
    models = dict(
        Chunk.objects.filter(pk__in=[h.chunk_id for h in hits]).values_list("pk", "embedding_model")
    )
    return [(hit.document_id, models[hit.chunk_id or 0]) for hit in hits]


class TestBackfill:
    def test_search_uses_the_old_model_until_the_new_one_covers_everything(
        self,
        collection: dict[str, Document],
        model_a: FakeProvider,
        model_b: FakeProvider,
        admin_user: User,
    ) -> None:
        """During the re-embed every query is embedded by A and meets A's chunks only,
        with the same results as before the switch; after the last document, B alone."""
        query = "paid vacation days"
        before = semantic(query, admin_user)
        assert before[0] == (collection["Vacation policy"].pk, model_a.name)

        set_embedder(model_b)
        ids = [d.pk for d in collection.values()]
        assert documents_embed(document_ids=ids[:2]) == 2  # Half the collection, staged.
        assert search_model_name() == model_a.name
        assert embed_query(query)[0].model == model_a.name
        assert semantic(query, admin_user) == before
        staged = Document.objects.filter(pk__in=ids[:2])
        assert set(staged.values_list("staged_model", "embedding_model")) == {
            (model_b.name, model_a.name)
        }
        assert Chunk.objects.filter(document_id__in=ids[:2], embedding_model=model_b.name).exists()

        assert documents_embed(document_ids=ids[2:]) == 2  # The last ones: the cut-over.
        assert search_model_name() == model_b.name
        assert embed_query(query)[0].model == model_b.name
        after = semantic(query, admin_user)
        assert after[0] == (collection["Vacation policy"].pk, model_b.name)
        assert {model for _, model in after} == {model_b.name}
        assert set(Chunk.objects.values_list("embedding_model", flat=True)) == {model_b.name}
        assert set(Document.objects.values_list("embedding_model", "staged_model")) == {
            (model_b.name, "")
        }
        recorded = recorded_search_settings()
        assert recorded is not None and recorded.embedding_model == model_b.name

    def test_an_edit_during_the_backfill_is_found_by_keyword_at_once(
        self,
        collection: dict[str, Document],
        model_a: FakeProvider,
        model_b: FakeProvider,
        admin_user: User,
    ) -> None:
        """A document edited mid-switch gets B's chunks at once: keyword search finds its
        new text; semantic search (still A) leaves it out rather than mix models."""
        set_embedder(model_b)
        remote = collection["Remote work"]
        document_update(document=remote, text="Staff may work remotely from abroad in summer.")
        assert search_model_name() == model_a.name
        keyword = search_hits(query="abroad summer", mode="keyword", user=admin_user)
        assert [hit.document_id for hit in keyword] == [remote.pk]
        assert remote.pk not in {doc for doc, _ in semantic("work from home", admin_user)}
        assert {model for _, model in semantic("work from home", admin_user)} == {model_a.name}


class TestCoverage:
    def test_the_admin_shows_how_far_the_switch_has_come(
        self,
        collection: dict[str, Document],
        model_a: FakeProvider,
        model_b: FakeProvider,
        client: Client,
        admin_user: User,
    ) -> None:
        """Documents per model (live and staged), the configured and the searched one."""
        set_embedder(model_b)
        documents_embed(document_ids=[collection["Vacation policy"].pk])
        rows = {row.model: row for row in model_coverage()}
        assert (rows[model_a.name].documents, rows[model_a.name].searched) == (4, True)
        assert (rows[model_b.name].staged, rows[model_b.name].configured) == (1, True)
        client.force_login(admin_user)
        page = client.get(reverse("admin:documents_document_changelist")).content.decode()
        assert model_b.name in page
        assert "1 staged" in page
        assert "searched now" in page


class TestFailedDocuments:
    def test_a_failed_document_holds_the_cut_over_until_forced(
        self,
        collection: dict[str, Document],
        model_a: FakeProvider,
        admin_user: User,
    ) -> None:
        """A document B cannot embed keeps A searched (its old vectors still answer);
        ``reembed --cut-over`` switches to B, and the document keeps its keyword index."""
        failing = FailingOn("ninety days")
        set_embedder(failing)
        passwords = collection["Password rules"]
        others = [d.pk for d in collection.values() if d.pk != passwords.pk]
        assert documents_embed(document_ids=others) == 3
        documents_index_attempt(document_ids=[passwords.pk], force=False, attempt=1, final=True)
        passwords.refresh_from_db()
        assert passwords.status == Document.Status.FAILED
        assert search_model_name() == model_a.name
        assert passwords.pk in {doc for doc, _ in semantic("passwords characters", admin_user)}

        out = StringIO()
        call_command("reembed", "--cut-over", stdout=out)
        assert f"Cut over to {failing.name}: 3 made live." in out.getvalue()
        assert search_model_name() == failing.name
        found = semantic("passwords characters", admin_user)
        assert passwords.pk not in {doc for doc, _ in found}
        assert {model for _, model in found} == {failing.name}
        keyword = search_hits(query="passwords characters", mode="keyword", user=admin_user)
        assert passwords.pk in {hit.document_id for hit in keyword}
