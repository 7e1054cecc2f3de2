"""The English companion model: a second vector on English chunks, blended
into an English query's semantic similarity."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from documents.embeddings import FakeProvider, Vectors, get_companion, normalise, set_embedder
from documents.models import Chunk, Document
from documents.services import chunks_embed_companion, document_create
from search.ranking.backends import SearchFilters, SearchMode
from search.ranking.backends.hybrid import HybridBackend, KeywordLeg
from search.ranking.backends.semantic import clear_query_cache, embed_query
from search.ranking.query import parse_query
from search.ranking.selectors import visible_documents
from tests.search.ranking.helpers import embed_all, ids, run

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from pytest_django.fixtures import Settings as SettingsWrapper

pytestmark = pytest.mark.django_db


class KeyedCompanion(FakeProvider):
    """A companion that knows one thing: texts naming ``spending`` point one
    way, all others another, and every query points the first way."""

    name = "fake-companion"
    dimensions = 8

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            vectors[row, 0 if "spending" in text.lower() else 1] = 1.0
        return vectors

    def embed_query(self, text: str) -> np.ndarray:
        return normalise(np.array([[1.0, 0.2, 0, 0, 0, 0, 0, 0]]))[0]


def vec(value: object) -> np.ndarray:
    return np.asarray(value, dtype=np.float32)


def use_companion(
    settings: SettingsWrapper, main: FakeProvider, companion: FakeProvider, weight: float
) -> None:
    set_embedder(companion)  # Known by its name from now on...
    set_embedder(main)  # ...while the main model stays the configured one.
    settings.EMBEDDING_COMPANION = companion.name
    settings.EMBEDDING_COMPANION_WEIGHT = weight
    clear_query_cache()


@pytest.fixture
def companion(settings: SettingsWrapper, fake_embedder: FakeProvider) -> Iterator[KeyedCompanion]:
    provider = KeyedCompanion()
    use_companion(settings, fake_embedder, provider, 0.5)
    yield provider
    clear_query_cache()


@pytest.fixture
def corpus(companion: KeyedCompanion) -> dict[str, Document]:
    documents = {
        "budget": document_create(
            title="Quarterly budget", text="The quarterly budget numbers for the board."
        ),
        "spending": document_create(
            title="Plan for the quarter", text="Spending plan of the quarter, by department."
        ),
        "korean": document_create(
            title="분기 예산 보고",
            text="분기 예산 보고서입니다. 부서별 예산 집행 현황을 정리했습니다.",
        ),
    }
    embed_all(list(documents.values()))
    return documents


def test_pipeline_stores_companion_vectors_of_english_chunks(
    corpus: dict[str, Document], companion: KeyedCompanion
) -> None:
    english = Chunk.objects.filter(document__language="en")
    assert english.count() == 2
    for chunk in english.select_related("document"):
        assert chunk.companion_model == companion.name
        expected = companion.embed_texts([f"{chunk.document.title}\n{chunk.text}"])[0]
        assert np.allclose(vec(chunk.companion_embedding), expected)
    korean = Chunk.objects.get(document=corpus["korean"])
    assert korean.companion_embedding is None and korean.companion_model == ""


def test_companion_reorders_an_english_query(
    user: User, corpus: dict[str, Document], settings: SettingsWrapper
) -> None:
    """The main model prefers the budget memo (shared words); the companion's
    cosine, weighted in, lifts the spending plan above it. Off, it does not."""
    with_companion = ids(run(SearchMode.SEMANTIC, "quarterly budget", user=user))
    settings.EMBEDDING_COMPANION = ""
    without = ids(run(SearchMode.SEMANTIC, "quarterly budget", user=user))
    assert without.index(corpus["budget"].pk) < without.index(corpus["spending"].pk)
    assert with_companion.index(corpus["spending"].pk) < with_companion.index(corpus["budget"].pk)


def test_scores_blend_both_cosines_and_korean_chunks_get_the_mean(
    user: User, corpus: dict[str, Document], companion: KeyedCompanion, fake_embedder: FakeProvider
) -> None:
    """score = 0.5 cos(main) + 0.5 cos(companion); a chunk the companion
    cannot read (Korean) gets the mean companion cosine of the candidates."""
    query = "quarterly budget"
    main_q = fake_embedder.embed_query(query)
    comp_q = companion.embed_query(query)
    chunks = {c.document_id: c for c in Chunk.objects.all()}
    comp = {
        doc: float(comp_q @ vec(c.companion_embedding))
        for doc, c in chunks.items()
        if c.companion_embedding is not None
    }
    mean = sum(comp.values()) / len(comp)
    result = run(SearchMode.SEMANTIC, query, user=user)
    assert len(result.hits) == 3
    for hit in result.hits:
        cosine = float(main_q @ vec(chunks[hit.document_id].embedding))
        expected = 0.5 * cosine + 0.5 * comp.get(hit.document_id, mean)
        assert hit.semantic_score == pytest.approx(expected, abs=1e-5)


def test_korean_query_is_not_embedded_by_the_companion(
    user: User, corpus: dict[str, Document], fake_embedder: FakeProvider
) -> None:
    """The companion reads English only: a Korean query ranks by the main
    model's cosine alone."""
    query = "분기 예산"
    main_q = fake_embedder.embed_query(query)
    result = run(SearchMode.SEMANTIC, query, user=user)
    chunks = {c.document_id: c for c in Chunk.objects.all()}
    for hit in result.hits:
        cosine = float(main_q @ vec(chunks[hit.document_id].embedding))
        assert hit.semantic_score == pytest.approx(cosine, abs=1e-5)


def test_hybrid_blends_keyword_only_candidates_too(
    user: User, companion: KeyedCompanion, fake_embedder: FakeProvider
) -> None:
    """A keyword candidate beyond the nearest chunks gets its semantic score
    exactly (``sem_fill``), blended the same way."""
    documents = [
        document_create(title=f"Memo {n}", text=f"Budget memo {n} about topic {n}.")
        for n in range(20)
    ] + [document_create(title="Spending", text="Spending of the budget, item by item.")]
    embed_all(documents)
    text = "budget"
    vector, _ = embed_query(text, fake_embedder, companion)
    keyword = KeywordLeg(
        document_ids=[d.pk for d in documents], scores=[1.0] * len(documents), bound=2.0
    )
    # Two semantic candidates: the other 19 keyword candidates are filled.
    rows = HybridBackend()._fused(
        parse_query(text), vector, visible_documents(user, SearchFilters()), keyword, 2, 21, 0.5
    )
    main_q, comp_q = fake_embedder.embed_query(text), companion.embed_query(text)
    chunks = {c.document_id: c for c in Chunk.objects.all()}
    assert len(rows) == 21
    assert sum(row[4] is None for row in rows) == 19
    for row in rows:
        chunk = chunks[row[0]]
        expected = 0.5 * float(main_q @ vec(chunk.embedding)) + 0.5 * float(
            comp_q @ vec(chunk.companion_embedding)
        )
        assert row[5] == pytest.approx(expected, abs=1e-5)


def test_vectors_of_another_companion_are_never_compared(
    user: User,
    corpus: dict[str, Document],
    fake_embedder: FakeProvider,
    settings: SettingsWrapper,
) -> None:
    """A new companion (other size, unrelated space): chunks carrying the old
    one's vectors count as unread until re-embedded, and the search works."""
    new = FakeProvider(name="fake-companion-2", seed=5)
    use_companion(settings, fake_embedder, new, 0.5)
    query = "quarterly budget"
    main_q = fake_embedder.embed_query(query)
    result = run(SearchMode.SEMANTIC, query, user=user)
    chunks = {c.document_id: c for c in Chunk.objects.all()}
    scores = {hit.document_id: hit.semantic_score for hit in result.hits}
    for doc, score in scores.items():
        cosine = float(main_q @ vec(chunks[doc].embedding))
        assert score == pytest.approx(0.5 * cosine + 0.5 * 0, abs=1e-5)
    assert Document.objects.needs_companion(new.name).count() == 2
    assert chunks_embed_companion() == 2
    assert set(Chunk.objects.values_list("companion_model", flat=True)) == {new.name, ""}
    assert not Document.objects.needs_companion(new.name).exists()


def test_reembed_stale_fills_missing_companion_vectors(
    corpus: dict[str, Document], django_capture_on_commit_callbacks: Any
) -> None:
    """An installation that had no companion: ``reembed --stale`` adds its
    vectors without re-embedding with the main model."""
    Chunk.objects.update(companion_embedding=None, companion_model="")
    before = dict(Chunk.objects.values_list("id", "updated_at"))
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("reembed", "--stale", "--no-progress", stdout=out)
    assert "Queued 2 document(s)." in out.getvalue()
    assert "fake-companion (companion): 0 of 2 English chunk(s)" in out.getvalue()
    english = Chunk.objects.filter(document__language="en")
    assert set(english.values_list("companion_model", flat=True)) == {"fake-companion"}
    assert dict(Chunk.objects.values_list("id", "updated_at")).keys() == before.keys()
    again = io.StringIO()
    call_command("reembed", "--stale", "--no-progress", stdout=again)
    assert "Nothing to re-embed." in again.getvalue()
    assert "fake-companion (companion): 2 of 2 English chunk(s)" in again.getvalue()


def test_companion_is_off_when_it_is_the_main_model_or_weightless(
    settings: SettingsWrapper, fake_embedder: FakeProvider
) -> None:
    settings.EMBEDDING_COMPANION = fake_embedder.name
    assert get_companion() is None
    settings.EMBEDDING_COMPANION = "fake-companion"
    settings.EMBEDDING_COMPANION_WEIGHT = 0
    assert get_companion() is None
