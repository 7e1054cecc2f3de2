"""Keyword pruning: common terms score the documents rarer terms found."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import Group, User

from search.ranking.backends import SearchMode
from tests.factories import make_document
from tests.search.ranking.helpers import embed_all, ids, run

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsWrapper

    from documents.models import Document

pytestmark = pytest.mark.django_db

#: A cap small enough that "ledger" (in five documents) is a common term.
CAP = 2


def scores(mode: SearchMode, query: str, *, user: User) -> dict[int, float]:
    return {hit.document_id: hit.keyword_score or 0.0 for hit in run(mode, query, user=user).hits}


class TestKeywordPruning:
    """Terms in more than SEARCH_KEYWORD_COMMON_POSTINGS visible documents."""

    @pytest.fixture
    def ledgers(self) -> list[Document]:
        """Four documents with only the common term "ledger"."""
        documents = [
            make_document("Memo", f"Ledger entry number {n}.", index=False) for n in range(4)
        ]
        embed_all(documents)
        return documents

    def test_common_term_generates_no_candidates(
        self, user: User, settings: SettingsWrapper, ledgers: list[Document]
    ) -> None:
        """A document with only a common term is not a candidate of a query with a rarer one."""
        rare = make_document("Memo", "The zephyrine ledger audit.")
        settings.SEARCH_KEYWORD_COMMON_POSTINGS = 0
        assert set(ids(run(SearchMode.KEYWORD, "zephyrine ledger", user=user))) == {
            rare.pk,
            *(d.pk for d in ledgers),
        }
        settings.SEARCH_KEYWORD_COMMON_POSTINGS = CAP
        result = run(SearchMode.KEYWORD, "zephyrine ledger", user=user)
        assert ids(result) == [rare.pk]
        # total is a lower bound: the common term's df when that is more.
        assert result.total == 5

    def test_share_of_the_collection_raises_the_cap(
        self, user: User, settings: SettingsWrapper, ledgers: list[Document]
    ) -> None:
        """A term in fewer than SEARCH_KEYWORD_COMMON_SHARE of the documents is never common."""
        rare = make_document("Memo", "The zephyrine ledger audit.")
        settings.SEARCH_KEYWORD_COMMON_POSTINGS = CAP
        settings.SEARCH_KEYWORD_COMMON_SHARE = 1.0
        assert set(ids(run(SearchMode.KEYWORD, "zephyrine ledger", user=user))) == {
            rare.pk,
            *(d.pk for d in ledgers),
        }

    def test_common_term_still_adds_its_score(
        self, user: User, settings: SettingsWrapper, ledgers: list[Document]
    ) -> None:
        """A candidate's score includes the common term's BM25 contribution, exactly."""
        both = make_document("Memo", "The zephyrine ledger audit.")
        rare_only = make_document("Memo", "The zephyrine audit report.")
        assert both.term_count == rare_only.term_count
        settings.SEARCH_KEYWORD_COMMON_POSTINGS = 0
        exact = scores(SearchMode.KEYWORD, "zephyrine ledger", user=user)
        settings.SEARCH_KEYWORD_COMMON_POSTINGS = CAP
        pruned = scores(SearchMode.KEYWORD, "zephyrine ledger", user=user)
        assert list(pruned) == [both.pk, rare_only.pk]
        assert pruned[both.pk] > pruned[rare_only.pk]
        for document_id, score in pruned.items():
            assert score == pytest.approx(exact[document_id], rel=1e-12)

    def test_all_common_query_reads_every_posting(
        self, user: User, settings: SettingsWrapper, ledgers: list[Document]
    ) -> None:
        """A query of common terms only still finds, and ranks, every match."""
        settings.SEARCH_KEYWORD_COMMON_POSTINGS = 0
        exact = run(SearchMode.KEYWORD, "ledger entry", user=user)
        settings.SEARCH_KEYWORD_COMMON_POSTINGS = CAP
        pruned = run(SearchMode.KEYWORD, "ledger entry", user=user)
        assert len(pruned.hits) == 4
        assert ids(pruned) == ids(exact)
        assert [h.keyword_score for h in pruned.hits] == pytest.approx(
            [h.keyword_score for h in exact.hits]
        )
        assert pruned.total == exact.total == 4

    def test_restricted_documents_never_count(
        self,
        user: User,
        other_user: User,
        hr_group: Group,
        settings: SettingsWrapper,
    ) -> None:
        """Commonness and df are counted over visible documents only."""
        settings.SEARCH_KEYWORD_COMMON_POSTINGS = CAP
        rare = make_document("Memo", "The zephyrine ledger audit.")
        plain = make_document("Memo", "Another ledger.")
        before = scores(SearchMode.KEYWORD, "zephyrine ledger", user=user)
        embed_all(
            [
                make_document(
                    "Memo",
                    f"Ledger {n}, restricted.",
                    owner=other_user,
                    groups=[hr_group],
                    index=False,
                )
                for n in range(3)
            ]
        )
        # For user, "ledger" is in two visible documents: not common, so the
        # plain ledger is still a candidate, with unchanged scores.
        after = scores(SearchMode.KEYWORD, "zephyrine ledger", user=user)
        assert after == before
        assert list(after) == [rare.pk, plain.pk]
        # The owner sees five ledgers: common for them, so no plain ledger.
        assert ids(run(SearchMode.KEYWORD, "zephyrine ledger", user=other_user)) == [rare.pk]

    def test_hybrid_bound_is_unchanged(
        self, user: User, settings: SettingsWrapper, ledgers: list[Document]
    ) -> None:
        """Hybrid fusion ranks alike with pruning on a query without common terms."""
        make_document("Memo", "The zephyrine audit.")
        make_document("Memo", "An audit of the zephyrine accounts.")
        settings.SEARCH_KEYWORD_COMMON_POSTINGS = 0
        exact = run(SearchMode.HYBRID, "zephyrine audit", user=user).hits
        settings.SEARCH_KEYWORD_COMMON_POSTINGS = CAP
        pruned = run(SearchMode.HYBRID, "zephyrine audit", user=user).hits
        assert [h.document_id for h in pruned] == [h.document_id for h in exact]
        assert [h.score for h in pruned] == pytest.approx([h.score for h in exact])
