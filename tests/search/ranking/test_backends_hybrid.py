"""The hybrid backend: the keyword leg, and the semantic leg fused with it."""

from __future__ import annotations

import math
import random
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.db.models import Count

from documents.embeddings import FakeProvider, set_embedder
from documents.models import Chunk, Document, DocumentTerm
from documents.services import document_create
from search.ranking.backends import SearchHit, SearchMode
from search.ranking.backends.semantic import embed_query
from search.ranking.backends.sql import BM25_K1
from search.ranking.query import parse_query
from tests.factories import make_document
from tests.search.ranking.helpers import embed_all, ids, rebuild_chunk_indexes, run

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsWrapper

pytestmark = pytest.mark.django_db


def _mark_one_leg(user: User) -> tuple[Document, Document, Document]:
    """Documents for hybrid fusion: one in both legs, one per single leg.

    With the fake embedder (hashed raw words) and the analyser (stems, no
    stopwords), ``keyword`` shares only stems with the query (high BM25, no
    shared raw word) and ``semantic`` only stopwords (similar vector, no
    keyword term); ``both`` shares two raw words and their stems.
    """
    keyword = make_document("Books", "ledger ledger ledger auditing audited")
    semantic = make_document("Into", "with them into them with")
    both = make_document("Notes", "ledgers audit with")
    # Weakly similar (one shared stopword), so the keyword document, which
    # shares no raw word with the query, falls out of the semantic leg.
    embed_all([make_document("Filler", f"with lunch menu {n}", index=False) for n in range(6)])
    rebuild_chunk_indexes()
    return keyword, semantic, both


ORACLE_VOCABULARY = (
    "ledger",
    "audit",
    "budget",
    "review",
    "policy",
    "password",
    "server",
    "backup",
    "deploy",
    "incident",
    "invoice",
    "travel",
    "hardware",
    "onboarding",
    "vacation",
    "payroll",
    "network",
    "firewall",
    "release",
    "schedule",
    "meeting",
    "report",
    "quarterly",
    "customer",
    "contract",
)
ORACLE_QUERIES = [
    "ledger audit",
    "password policy review",
    "backup server incident report",
    "quarterly budget",
    "customer contract invoice travel",
]


def _build_corpus(size: int) -> list[Document]:
    """A deterministic corpus of ``size`` documents over a small vocabulary."""
    rng = random.Random(20240611)
    documents = []
    for n in range(size):
        words = rng.choices(ORACLE_VOCABULARY, k=rng.randint(4, 14))
        title = " ".join(rng.sample(ORACLE_VOCABULARY, 2)).title()
        documents.append(document_create(title=f"{title} {n}", text=" ".join(words) + "."))
    embed_all(documents)
    return documents


def bm25_bound(text: str) -> float:
    """The query's BM25 bound, from the postings: sum of idf(t) * (k1 + 1) over its terms."""
    terms = set(parse_query(text).terms)
    n = Document.objects.filter(term_count__gt=0).count()
    df = dict(
        DocumentTerm.objects.filter(term__in=terms)
        .values_list("term")
        .annotate(n=Count("document"))
        .order_by()
    )
    return sum(
        math.log(1 + (n - df.get(t, 0) + 0.5) / (df.get(t, 0) + 0.5)) * (BM25_K1 + 1) for t in terms
    )


def best_chunk_cosines(text: str, document_ids: set[int]) -> dict[int, float]:
    """Each document's best chunk cosine with the query, computed in Python."""
    query = embed_query(text)[0].vector.to_numpy()
    best: dict[int, float] = {}
    for document_id, vector in Chunk.objects.filter(document_id__in=document_ids).values_list(
        "document_id", "embedding"
    ):
        assert vector is not None
        cosine = float(np.dot(query, vector) / (np.linalg.norm(query) * np.linalg.norm(vector)))
        best[document_id] = max(best.get(document_id, -1.0), cosine)
    return best


def convex_fusion(
    text: str, keyword: list[SearchHit], semantic: list[SearchHit], *, semantic_weight: float
) -> list[tuple[int, float]]:
    """Pure-Python convex fusion: the test oracle for the hybrid SQL.

    Keyword scores are divided by the query's BM25 bound (at most 1);
    semantic scores are the leg's, or for a keyword candidate the leg did
    not find its best chunk's cosine, min-max scaled over all of them (all 1
    when they are all equal); a missing leg counts 0. Ties go to the lower
    document id.
    """
    bound = bm25_bound(text)
    keyword_scores = {h.document_id: h.score for h in keyword}
    semantic_scores = {h.document_id: h.score for h in semantic}
    missing = set(keyword_scores) - set(semantic_scores)
    semantic_scores |= best_chunk_cosines(text, missing)
    semantic_lo = min(semantic_scores.values(), default=0.0)
    semantic_hi = max(semantic_scores.values(), default=0.0)
    fused: dict[int, float] = {}
    for doc in keyword_scores.keys() | semantic_scores.keys():
        kw = min(keyword_scores.get(doc, 0.0) / bound, 1.0) if bound else 0.0
        if doc not in semantic_scores:
            sem = 0.0
        elif semantic_hi == semantic_lo:
            sem = 1.0
        else:
            sem = (semantic_scores[doc] - semantic_lo) / (semantic_hi - semantic_lo)
        fused[doc] = (1 - semantic_weight) * kw + semantic_weight * sem
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


class TestHybridBackend:
    """The keyword leg, then the semantic leg fused with it in one statement."""

    QUERY = "ledgers audit with them into"

    def test_both_legs_rank_first(self, user: User, settings: SettingsWrapper) -> None:
        """A document found by both legs outranks the top of either single leg."""
        settings.SEARCH_CANDIDATES = 3
        keyword, semantic, both = _mark_one_leg(user)
        keyword_ids = ids(run(SearchMode.KEYWORD, self.QUERY, user=user, limit=3))
        semantic_ids = ids(run(SearchMode.SEMANTIC, self.QUERY, user=user, limit=3))
        assert keyword_ids[0] == keyword.pk
        assert semantic_ids[0] == semantic.pk
        assert keyword.pk not in semantic_ids
        assert semantic.pk not in keyword_ids
        hits = run(SearchMode.HYBRID, self.QUERY, user=user, limit=3).hits
        assert hits[0].document_id == both.pk
        assert hits[0].keyword_rank is not None
        assert hits[0].semantic_rank is not None
        one_leg = {h.document_id: h for h in hits[1:]}
        assert one_leg[keyword.pk].semantic_rank is None
        assert one_leg[semantic.pk].keyword_rank is None

    def test_results_come_from_the_legs(self, user: User, settings: SettingsWrapper) -> None:
        """Hybrid hits are drawn from the union of the two legs' candidates."""
        settings.SEARCH_CANDIDATES = 10
        _build_corpus(30)
        for query in ORACLE_QUERIES:
            keyword = set(ids(run(SearchMode.KEYWORD, query, user=user, limit=10)))
            semantic = set(ids(run(SearchMode.SEMANTIC, query, user=user, limit=10)))
            hybrid = ids(run(SearchMode.HYBRID, query, user=user, limit=10))
            assert hybrid
            assert set(hybrid) <= keyword | semantic
            assert len(hybrid) == len(set(hybrid))

    def test_leg_ranks_match_single_modes(self, user: User, settings: SettingsWrapper) -> None:
        """keyword_rank and semantic_rank are the documents' ranks in each mode; a keyword
        candidate the semantic leg did not reach still carries its best chunk's cosine."""
        _build_corpus(30)
        candidates = settings.SEARCH_CANDIDATES
        for query in ORACLE_QUERIES:
            keyword = {
                h.document_id: h
                for h in run(SearchMode.KEYWORD, query, user=user, limit=candidates).hits
            }
            semantic = {
                h.document_id: h
                for h in run(SearchMode.SEMANTIC, query, user=user, limit=candidates).hits
            }
            hits = run(SearchMode.HYBRID, query, user=user, limit=10).hits
            assert hits
            for hit in hits:
                kw, sem = keyword.get(hit.document_id), semantic.get(hit.document_id)
                assert hit.keyword_rank == (kw.rank if kw else None)
                assert hit.keyword_score == (pytest.approx(kw.score) if kw else None)
                assert hit.semantic_rank == (sem.rank if sem else None)
                if sem is not None:
                    assert hit.semantic_score == pytest.approx(sem.score)
                    assert hit.chunk_id == sem.chunk_id
                else:  # A keyword candidate: its score was filled in exactly.
                    filled = best_chunk_cosines(query, {hit.document_id})[hit.document_id]
                    assert hit.semantic_score == pytest.approx(filled)
            assert any(h.keyword_rank and h.semantic_rank for h in hits)

    def test_fake_provider_weights(self, fake_embedder: FakeProvider) -> None:
        """The fake provider gives both languages an equal say."""
        assert fake_embedder.semantic_weights == {"en": 0.5, "ko": 0.5}

    def test_unread_language_is_keyword_only(
        self,
        user: User,
        fake_embedder: FakeProvider,
        monkeypatch: pytest.MonkeyPatch,
        settings: SettingsWrapper,
    ) -> None:
        """A Korean query to a model that reads no Korean is ranked by keywords alone."""
        settings.SEARCH_SEMANTIC_WEIGHT = None
        monkeypatch.setattr(fake_embedder, "semantic_weights", {"en": 0.5, "ko": 0.0})
        make_document("문서 가", "임베딩은 문장을 벡터로 바꾼다. 검색에 쓴다.")
        make_document("문서 나", "임베딩 검색 임베딩 검색")
        make_document("문서 다", "검색 엔진 소개")
        make_document("Doc", "embedding search")
        query = "임베딩 검색은"
        keyword = run(SearchMode.KEYWORD, query, user=user)
        hybrid = run(SearchMode.HYBRID, query, user=user)
        assert len(hybrid.hits) == 3
        assert hybrid.hits == keyword.hits
        assert any(note.startswith("keyword-only") for note in hybrid.notes)
        english = run(SearchMode.HYBRID, "embedding search", user=user)
        assert not any(note.startswith("keyword-only") for note in english.notes)
        assert english.hits[0].semantic_rank is not None

    def test_fusion_matches_python_oracle(self, user: User, settings: SettingsWrapper) -> None:
        """The fusion SQL orders documents as the convex-fusion oracle does."""
        settings.SEARCH_SEMANTIC_WEIGHT = None
        settings.SEARCH_FUSION = "convex"
        _build_corpus(30)
        candidates = settings.SEARCH_CANDIDATES
        for text in ORACLE_QUERIES:
            keyword = run(SearchMode.KEYWORD, text, user=user, limit=candidates).hits
            semantic = run(SearchMode.SEMANTIC, text, user=user, limit=candidates).hits
            expected = convex_fusion(text, keyword, semantic, semantic_weight=0.5)[:10]
            hybrid = run(SearchMode.HYBRID, text, user=user, limit=10).hits
            assert [h.document_id for h in hybrid] == [doc for doc, _ in expected], text
            assert [h.score for h in hybrid] == pytest.approx([s for _, s in expected])

    def test_the_query_is_embedded_while_the_keyword_leg_runs(
        self, user: User, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The model's time and the keyword leg's overlap: the query is embedded
        on another thread, and the keyword leg starts before it is done."""
        from search.ranking.backends import hybrid

        events: dict[str, tuple[float, float, str]] = {}

        class SlowProvider(FakeProvider):
            def embed_query(self, text: str) -> np.ndarray:
                started = time.perf_counter()
                time.sleep(0.3)
                vector = super().embed_query(text)
                events["embed"] = (started, time.perf_counter(), threading.current_thread().name)
                return vector

        set_embedder(SlowProvider())
        original = hybrid._keyword_leg

        def recording(*args: Any) -> Any:
            started = time.perf_counter()
            leg = original(*args)
            events["keyword"] = (started, time.perf_counter(), threading.current_thread().name)
            return leg

        monkeypatch.setattr(hybrid, "_keyword_leg", recording)
        _, _, both = _mark_one_leg(user)
        hits = run(SearchMode.HYBRID, self.QUERY, user=user, limit=3).hits
        assert hits[0].document_id == both.pk
        embed_start, embed_end, embed_thread = events["embed"]
        keyword_start, keyword_end, keyword_thread = events["keyword"]
        assert embed_thread != keyword_thread == threading.current_thread().name
        assert keyword_start < embed_end and embed_start < keyword_end
