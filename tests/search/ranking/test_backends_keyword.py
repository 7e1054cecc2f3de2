"""The keyword backend: BM25 over analysed terms."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from search.ranking.backends import SearchMode
from tests.factories import make_document
from tests.search.ranking.helpers import embed_all, ids, run

pytestmark = pytest.mark.django_db


class TestKeywordBackend:
    """BM25 over analysed terms."""

    @pytest.mark.parametrize("query", ["임베딩은", "임베딩을", "임베딩"])
    def test_korean_particles(self, user: User, query: str) -> None:
        """Each particle form of a noun finds documents with every other form."""
        docs = [
            make_document("문서 가", "임베딩은 문장을 벡터로 바꾼다."),
            make_document("문서 나", "이 모델로 임베딩을 만든다."),
            make_document("문서 다", "임베딩 모델 목록"),
        ]
        make_document("문서 라", "키워드 검색 설명")
        assert set(ids(run(SearchMode.KEYWORD, query, user=user))) == {d.pk for d in docs}

    @pytest.mark.parametrize("query", ["policy", "policies", "Policies"])
    def test_english_stemming(self, user: User, query: str) -> None:
        """Inflected English words match each other through their stem."""
        docs = [
            make_document("Rules", "Our security policy."),
            make_document("Rules", "All policies apply."),
        ]
        make_document("Rules", "Police station.")
        assert set(ids(run(SearchMode.KEYWORD, query, user=user))) == {d.pk for d in docs}

    def test_title_weighted_above_body(self, user: User) -> None:
        """A term once in the title outranks the same term once in the body."""
        body = make_document("Quarterly report", "Notes on the budget for this quarter.")
        title = make_document("Budget report", "Notes on the quarterly for this quarter.")
        assert body.term_count == title.term_count
        assert ids(run(SearchMode.KEYWORD, "budget", user=user)) == [title.pk, body.pk]

    def test_rare_term_outranks_repeated_common_term(self, user: User) -> None:
        """BM25 idf: one rare term beats a common term repeated."""
        rare = make_document("Memo", "The zephyrine audit and the ledger.")
        common = make_document("Memo", "The ledger ledger ledger audit.")
        embed_all(
            [make_document("Memo", f"Ledger entry number {n}.", index=False) for n in range(8)]
        )
        found = ids(run(SearchMode.KEYWORD, "zephyrine ledger", user=user))
        assert found.index(rare.pk) < found.index(common.pk)
        assert found[0] == rare.pk

    def test_more_matching_terms_rank_first(self, user: User) -> None:
        """Words are alternatives: documents with more of them rank higher."""
        both = make_document("Memo", "The password policy.")
        one = make_document("Memo", "The password.")
        found = ids(run(SearchMode.KEYWORD, "password policy", user=user))
        assert found == [both.pk, one.pk]

    def test_mixed_language_document(self, user: User) -> None:
        """A Korean-English document is found by either language."""
        mixed = make_document("검색 안내", "이 문서는 search engine 사용법을 설명한다.")
        make_document("Other", "Nothing to see.")
        assert ids(run(SearchMode.KEYWORD, "search engines", user=user)) == [mixed.pk]
        assert ids(run(SearchMode.KEYWORD, "사용법은", user=user)) == [mixed.pk]
        assert ids(run(SearchMode.KEYWORD, "검색", user=user)) == [mixed.pk]

    def test_no_match_is_empty(self, user: User) -> None:
        """Keyword search finds nothing for words no document has."""
        make_document("Memo", "The password policy.")
        result = run(SearchMode.KEYWORD, "zebra", user=user)
        assert result.hits == []
        assert result.total == 0

    def test_total_counts_all_matches(self, user: User) -> None:
        """total counts every matching document, beyond the limit."""
        embed_all([make_document("Memo", f"ledger {n}", index=False) for n in range(5)])
        result = run(SearchMode.KEYWORD, "ledger", user=user, limit=2)
        assert len(result.hits) == 2
        assert result.total == 5

    def test_restricted_documents_do_not_shape_scores(
        self, user: User, other_user: User, hr_group: Group
    ) -> None:
        """Statistics count only visible documents: a hidden one changes no score."""
        visible = make_document("Memo", "The zephyrine ledger audit.")
        make_document("Memo", "Another ledger.")
        before = run(SearchMode.KEYWORD, "zephyrine ledger", user=user).hits
        make_document(
            "Zephyrine ledger",
            "Zephyrine zephyrine ledger audit, restricted.",
            owner=other_user,
            groups=[hr_group],
        )
        after = run(SearchMode.KEYWORD, "zephyrine ledger", user=user).hits
        assert after == before
        assert after[0].document_id == visible.pk
        assert after[0].keyword_score == before[0].keyword_score
        # The owner sees the new document, and statistics change for them.
        owner_hits = run(SearchMode.KEYWORD, "zephyrine ledger", user=other_user).hits
        assert len(owner_hits) == 3
        visible_for_owner = next(h for h in owner_hits if h.document_id == visible.pk)
        assert visible_for_owner.keyword_score != before[0].keyword_score
