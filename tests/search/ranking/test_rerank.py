"""Re-ranking with a cross-encoder: a real (tiny, randomly initialised) model on disk.

No multilingual cross-encoder ships its weights on the package index, so the
tests build their own: a one-layer BERT sequence classifier with a character
vocabulary, saved as a sentence-transformers CrossEncoder directory. Its
scores are arbitrary but deterministic, so the tests check that the order is
the model's and that everything around it (candidates, visibility, notes, the
page and the API) holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.test import Client
from django.urls import reverse

from search.ranking import rerank
from search.ranking.rerank import (
    UNAVAILABLE,
    CrossEncoderReranker,
    RerankerUnavailable,
    get_reranker,
    rerank_hits,
)
from search.ranking.selectors import search_documents, search_hits
from tests.factories import make_document

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from django.contrib.auth.models import Group, User
    from pytest_django.fixtures import Settings as SettingsWrapper

    from documents.models import Document
    from search.ranking.backends import SearchHit

pytestmark = pytest.mark.django_db

_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789 휴가연차근속정책보안비밀번호경비"


@pytest.fixture(scope="session")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    path = tmp_path_factory.mktemp("cross-encoder")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(_CHARACTERS) - {" "})]
    (path / "vocab.txt").write_text("\n".join(vocab), encoding="utf-8")
    BertTokenizer(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(7)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=512,
    )
    config.num_labels = 1
    BertForSequenceClassification(config).save_pretrained(path)
    return path


@pytest.fixture
def reranker_on(settings: SettingsWrapper, cross_encoder_dir: Path) -> Iterator[None]:
    settings.RERANK_MODEL = str(cross_encoder_dir)
    settings.RERANK_CANDIDATES = 4
    yield
    rerank._load.cache_clear()


@pytest.fixture
def logged_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


@pytest.fixture
def policies() -> list[Document]:
    return [
        make_document(f"Policy {n}", f"policy text {word} number {n}")
        for n, word in enumerate(["vacation", "password", "travel", "budget", "laptop", "remote"])
    ]


def _own_order(
    cross_encoder_dir: Path, query: str, hits: list[SearchHit], passages: dict[int, str]
) -> list[int]:
    scores = CrossEncoderReranker(cross_encoder_dir).score(
        query, [passages[h.document_id] for h in hits]
    )
    order = sorted(range(len(hits)), key=lambda i: (-scores[i], hits[i].rank))
    return [hits[i].document_id for i in order]


class TestRerankHits:
    def test_top_candidates_follow_the_cross_encoder(
        self, reranker_on: None, cross_encoder_dir: Path, policies: list[Document], user: User
    ) -> None:
        hits = search_hits(query="policy", mode="hybrid", user=user, limit=6)
        assert len(hits) == 6
        reranked, ms = rerank_hits("policy", hits, candidates=4)
        passages = rerank._passages(hits[:4])
        assert [h.document_id for h in reranked[:4]] == _own_order(
            cross_encoder_dir, "policy", hits[:4], passages
        )
        # The candidates are the hybrid top 4; the rest keep their order after them.
        assert {h.document_id for h in reranked[:4]} == {h.document_id for h in hits[:4]}
        assert [h.document_id for h in reranked[4:]] == [h.document_id for h in hits[4:]]
        assert [h.rank for h in reranked] == list(range(1, 7))
        assert [h.rerank_rank for h in reranked] == [1, 2, 3, 4, None, None]
        scores = [h.rerank_score or 0.0 for h in reranked[:4]]
        assert scores == sorted(scores, reverse=True)
        # Hybrid's own evidence is kept for "why this result".
        by_id = {h.document_id: h for h in hits}
        assert all(h.keyword_rank == by_id[h.document_id].keyword_rank for h in reranked)
        assert ms > 0

    def test_passage_is_title_and_matched_chunk(self, policies: list[Document], user: User) -> None:
        hits = search_hits(query="vacation", mode="semantic", user=user, limit=1)
        passage = rerank._passages(hits)[hits[0].document_id]
        assert passage.startswith(f"{policies[0].title}\n")
        assert "vacation" in passage

    def test_search_hits_rerank_changes_only_the_order(
        self, reranker_on: None, policies: list[Document], user: User
    ) -> None:
        plain = search_hits(query="policy", mode="keyword", user=user, limit=3)
        reranked = search_hits(query="policy", mode="keyword", user=user, limit=3, rerank=True)
        assert len(reranked) == 3
        assert all(h.rerank_rank is not None for h in reranked)
        # Re-ranking draws from RERANK_CANDIDATES (4), not only the first 3.
        wider = search_hits(query="policy", mode="keyword", user=user, limit=4)
        assert {h.document_id for h in reranked} <= {h.document_id for h in wider}
        assert len(plain) == 3


class TestConfiguration:
    def test_unconfigured_is_unavailable(self, settings: SettingsWrapper) -> None:
        settings.RERANK_MODEL = ""
        with pytest.raises(RerankerUnavailable, match="RERANK_MODEL"):
            get_reranker()

    def test_missing_directory_is_a_clear_error(
        self, settings: SettingsWrapper, tmp_path: Path
    ) -> None:
        settings.RERANK_MODEL = str(tmp_path / "absent")
        with pytest.raises(RerankerUnavailable, match="is not a directory"):
            get_reranker()
        rerank._load.cache_clear()

    def test_broken_model_directory_is_a_clear_error(
        self, settings: SettingsWrapper, tmp_path: Path
    ) -> None:
        (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
        settings.RERANK_MODEL = str(tmp_path)
        with pytest.raises(RerankerUnavailable, match="cannot be loaded"):
            get_reranker()
        rerank._load.cache_clear()


class TestSearchPage:
    def test_rerank_without_a_model_keeps_the_order_and_says_so(
        self, settings: SettingsWrapper, policies: list[Document], user: User
    ) -> None:
        settings.RERANK_MODEL = ""
        plain = search_documents(query="policy", mode="hybrid", user=user)
        asked = search_documents(query="policy", mode="hybrid", user=user, rerank=True)
        assert not asked.reranked
        assert UNAVAILABLE in asked.notes
        assert [i.document.pk for i in asked.items] == [i.document.pk for i in plain.items]

    def test_rerank_default_setting(
        self, reranker_on: None, settings: SettingsWrapper, policies: list[Document], user: User
    ) -> None:
        settings.RERANK_DEFAULT = True
        assert search_documents(query="policy", mode="hybrid", user=user).reranked
        off = search_documents(query="policy", mode="hybrid", user=user, rerank=False)
        assert not off.reranked
        assert all(item.hit.rerank_rank is None for item in off.items)

    def test_restricted_documents_never_reach_the_cross_encoder(
        self,
        reranker_on: None,
        policies: list[Document],
        user: User,
        hr_group: Group,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        secret = make_document("Policy salaries", "policy text salaries", groups=[hr_group])
        seen: list[str] = []
        original = CrossEncoderReranker.score

        def spy(self: CrossEncoderReranker, query: str, passages: list[str]) -> list[float]:
            seen.extend(passages)
            return original(self, query, passages)

        monkeypatch.setattr(CrossEncoderReranker, "score", spy)
        page = search_documents(query="policy", mode="hybrid", user=user, rerank=True)
        assert page.reranked and seen
        assert secret.pk not in [item.document.pk for item in page.items]
        assert not any("salaries" in passage for passage in seen)

    def test_page_shows_the_rerank_rank(
        self, reranker_on: None, logged_in: Client, policies: list[Document]
    ) -> None:
        response = logged_in.get(reverse("search:search"), {"q": "policy", "rerank": "1"})
        assert response.status_code == 200
        body = response.content.decode()
        assert "Re-ranked" in body and "cross-encoder score" in body
        assert '<option value="1" selected>' in body

    def test_api_rerank_parameter(
        self, reranker_on: None, logged_in: Client, policies: list[Document]
    ) -> None:
        data = logged_in.get(reverse("search:api_search"), {"q": "policy", "rerank": "on"}).json()
        assert data["reranked"] is True
        assert [r["rerank_rank"] for r in data["results"][:4]] == [1, 2, 3, 4]
        assert "rerank_ms" in data["timings_ms"]
        off = logged_in.get(reverse("search:api_search"), {"q": "policy", "rerank": "0"}).json()
        assert off["reranked"] is False
        assert all(r["rerank_rank"] is None for r in off["results"])

    def test_api_refuses_a_bad_switch(self, logged_in: Client) -> None:
        response = logged_in.get(reverse("search:api_search"), {"q": "policy", "rerank": "maybe"})
        assert response.status_code == 400
        assert "rerank" in response.json()["fields"]
