"""The semantic backend, and the cache of query embeddings it uses."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User

from documents.embeddings import FakeProvider, set_embedder
from documents.models import Chunk, Document
from documents.services import document_create
from search.ranking.backends import SearchFilters, SearchMode
from search.ranking.backends.hybrid import HybridBackend
from search.ranking.backends.semantic import (
    SemanticBackend,
    clear_query_cache,
    embed_query,
    exact_scan_needed,
)
from search.ranking.query import parse_query
from search.ranking.selectors import visible_documents
from tests.factories import make_document
from tests.search.ranking.helpers import embed_all, ids, run

if TYPE_CHECKING:
    from search.ranking.backends.sql import VectorQuery
    from search.ranking.query import ParsedQuery

pytestmark = pytest.mark.django_db


class TestSemanticBackend:
    """Nearest chunks through the HNSW index, with a filtered-recall guard."""

    @pytest.fixture
    def corpus(self) -> list[Document]:
        """200 documents, 2 of them tagged "rare" and 10 tagged "ten"."""
        documents = [
            document_create(
                title=f"Memo {n}",
                text=f"Memo {n} about topic {n % 17} and item {n % 23} of the plan.",
                tags=["rare"] if n in (37, 151) else (["ten"] if n % 20 == 3 else []),
            )
            for n in range(200)
        ]
        embed_all(documents)
        return documents

    def test_selective_filter_keeps_recall(self, user: User, corpus: list[Document]) -> None:
        """A filter matching 1% of documents still yields all of them."""
        rare = {d.pk for d in corpus if "rare" in d.tags}
        result = run(
            SearchMode.SEMANTIC,
            "memo about the plan",
            user=user,
            filters=SearchFilters(tags=("rare",)),
            limit=2,
        )
        assert set(ids(result)) == rare
        assert len(result.hits) == 2

    def test_filter_returns_limit(self, user: User, corpus: list[Document]) -> None:
        """A filter matching exactly ``limit`` documents yields all of them."""
        ten = {d.pk for d in corpus if "ten" in d.tags}
        assert len(ten) == 10
        result = run(
            SearchMode.SEMANTIC,
            "topic item",
            user=user,
            filters=SearchFilters(tags=("ten",)),
            limit=10,
        )
        assert set(ids(result)) == ten

    def test_starved_index_scan_falls_back_to_exact(
        self, user: User, corpus: list[Document], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When the index scan stops short of ``limit``, an exact scan finds the rest.

        The planner picks the tag index for a 200-document corpus, so the
        starved HNSW scan (hnsw.max_scan_tuples reached) is simulated.
        """
        original = SemanticBackend._nearest
        exact_flags: list[bool] = []

        def starved(
            backend: SemanticBackend, query: ParsedQuery, vector: VectorQuery, **kwargs: Any
        ) -> tuple[list[tuple[Any, ...]], int]:
            exact_flags.append(vector.exact)
            rows, scanned = original(backend, query, vector, **kwargs)
            return (rows, scanned) if vector.exact else (rows[:1], 1)

        monkeypatch.setattr(SemanticBackend, "_nearest", starved)
        rare = {d.pk for d in corpus if "rare" in d.tags}
        filters = SearchFilters(tags=("rare",))
        result = run(
            SearchMode.SEMANTIC, "memo about the plan", user=user, filters=filters, limit=2
        )
        assert exact_flags == [False, True]
        assert set(ids(result)) == rare
        assert "exact-scan" in result.notes

    def test_full_index_scan_needs_no_exact_scan(
        self, user: User, corpus: list[Document], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An index scan that yields ``limit`` documents is not repeated."""
        original = SemanticBackend._nearest
        exact_flags: list[bool] = []

        def recording(
            backend: SemanticBackend, query: ParsedQuery, vector: VectorQuery, **kwargs: Any
        ) -> tuple[list[tuple[Any, ...]], int]:
            exact_flags.append(vector.exact)
            return original(backend, query, vector, **kwargs)

        monkeypatch.setattr(SemanticBackend, "_nearest", recording)
        result = run(SearchMode.SEMANTIC, "memo about the plan", user=user, limit=10)
        assert exact_flags == [False]
        assert len(result.hits) == 10
        assert "exact-scan" not in result.notes

    def test_hybrid_starved_index_scan_falls_back_to_exact(
        self, user: User, corpus: list[Document], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Hybrid search repeats a starved fused query with an exact scan."""
        original = HybridBackend._fused
        exact_flags: list[bool] = []

        def starved(
            backend: HybridBackend, query: ParsedQuery, vector: VectorQuery, *args: Any
        ) -> list[tuple[Any, ...]]:
            exact_flags.append(vector.exact)
            return original(backend, query, vector, *args) if vector.exact else []

        monkeypatch.setattr(HybridBackend, "_fused", starved)
        rare = {d.pk for d in corpus if "rare" in d.tags}
        filters = SearchFilters(tags=("rare",))
        result = run(SearchMode.HYBRID, "memo about the plan", user=user, filters=filters, limit=2)
        assert exact_flags == [False, True]
        assert set(ids(result)) == rare

    def test_a_short_scan_is_repeated_only_if_it_missed_visible_chunks(
        self, user: User, corpus: list[Document]
    ) -> None:
        """The rescan decision counts the chunks the user may see, filters included."""
        vector, _ = embed_query("memo about the plan")
        everything = visible_documents(user, SearchFilters())
        rare = visible_documents(user, SearchFilters(tags=("rare",)))
        query = parse_query("memo about the plan")
        chunks = Chunk.objects.count()

        def needed(queryset: Any, scanned: int) -> bool:
            return exact_scan_needed(query, vector, queryset=queryset, scanned=scanned, wanted=1000)

        assert (needed(everything, chunks), needed(everything, chunks - 1)) == (False, True)
        assert (needed(rare, 2), needed(rare, 1)) == (False, True)
        assert not exact_scan_needed(query, vector, queryset=rare, scanned=5, wanted=5)

    @pytest.mark.parametrize("mode", [SearchMode.SEMANTIC, SearchMode.HYBRID])
    def test_a_small_collection_is_searched_once(
        self, user: User, monkeypatch: pytest.MonkeyPatch, mode: SearchMode
    ) -> None:
        """Fewer chunks than wanted, but all there are: no exact scan follows.

        Hybrid asks for 100 candidates (300 chunks), semantic for 10
        documents. The first scan is made exact underneath, so that it surely
        sees every chunk: an HNSW scan can miss live rows among the dead ones
        that rolled-back tests leave in the index until a vacuum (which is
        when the rescan earns its keep).
        """
        documents = [
            make_document(f"Memo {n}", f"memo about the plan number {n}", index=False)
            for n in range(5)
        ]
        embed_all(documents)
        flags: list[bool] = []
        for backend, method in ((SemanticBackend, "_nearest"), (HybridBackend, "_fused")):
            original = getattr(backend, method)

            def recording(
                self: Any,
                query: ParsedQuery,
                vector: VectorQuery,
                *args: Any,
                _o: Any = original,
                **kwargs: Any,
            ) -> Any:
                flags.append(vector.exact)
                complete = dataclasses.replace(vector, exact=True)
                return _o(self, query, complete, *args, **kwargs)

            monkeypatch.setattr(backend, method, recording)
        result = run(mode, "memo about the plan", user=user, limit=10)
        assert flags == [False]
        assert set(ids(result)) == {d.pk for d in documents}

    def test_most_similar_first(self, user: User) -> None:
        """The document sharing most words with the query ranks first."""
        best = make_document("Plan", "quarterly hardware budget plan")
        make_document("Plan", "hardware inventory")
        make_document("Plan", "lunch menu")
        hits = run(SearchMode.SEMANTIC, "quarterly hardware budget", user=user).hits
        assert hits[0].document_id == best.pk
        assert hits[0].chunk_id in set(best.chunks.values_list("pk", flat=True))
        assert hits[0].semantic_score == hits[0].score

    def test_other_model_chunks_ignored(self, user: User) -> None:
        """Chunks embedded by another model are not compared with the query."""
        doc = make_document("Plan", "quarterly hardware budget plan")
        doc.chunks.update(embedding_model="some-other-model")
        assert run(SearchMode.SEMANTIC, "quarterly hardware budget", user=user).hits == []


class CountingProvider(FakeProvider):
    """The fake embedder, counting the queries it embeds."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def embed_query(self, text: str) -> Any:
        self.queries.append(text)
        return super().embed_query(text)


class TestQueryEmbeddingCache:
    """The UI searches the same text again for each page, filter or mode."""

    def test_a_repeated_query_is_embedded_once(self) -> None:
        provider = CountingProvider()
        set_embedder(provider)
        first, _ = embed_query("annual leave")
        again, _ = embed_query("annual leave")
        other, _ = embed_query("annual leave policy")
        assert provider.queries == ["annual leave", "annual leave policy"]
        assert again == first and other != first

    def test_a_new_provider_never_gets_anothers_vectors(self) -> None:
        old = CountingProvider()
        set_embedder(old)
        before, _ = embed_query("annual leave")
        new = CountingProvider()
        new.name = "another-model"
        set_embedder(new)
        after, _ = embed_query("annual leave")
        assert new.queries == ["annual leave"]
        assert (before.model, after.model) == (old.name, "another-model")

    def test_the_cache_is_bounded_and_can_be_cleared(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from search.ranking.backends import semantic

        monkeypatch.setattr(semantic, "QUERY_CACHE_SIZE", 2)
        provider = CountingProvider()
        set_embedder(provider)
        for text in ("a1", "b2", "c3", "a1"):  # a1 was evicted by c3.
            embed_query(text)
        assert provider.queries == ["a1", "b2", "c3", "a1"]
        embed_query("a1")
        clear_query_cache()
        embed_query("a1")
        assert provider.queries.count("a1") == 3
