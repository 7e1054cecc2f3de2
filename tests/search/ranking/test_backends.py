"""The search backends: the registry, and one contract for every mode."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from documents.models import Document
from search.ranking.backends import SearchFilters, SearchMode, get_search_backend
from search.ranking.backends.hybrid import HybridBackend
from search.ranking.backends.keyword import KeywordBackend
from search.ranking.backends.semantic import SemanticBackend
from search.ranking.selectors import search_hits
from tests.factories import make_document
from tests.search.ranking.helpers import embed_all, ids, run

pytestmark = pytest.mark.django_db

METACHARACTER_QUERIES = [
    "& | ! ( ) : * < > ' \\ ;",
    "budget' | 'x':* & !(y) <-> z",
    "'; DROP TABLE documents_document; --",
    "budget:* & !review",
    '"budget <-> review" -"!!" -(',
    "\\'\\\\' %s %(x)s $1 ?",
    "budget\x00review",
    "임베딩은 & 검색 | ! :*",
    '"""budget',
]


@pytest.fixture
def member(hr_group: Group) -> User:
    member = User.objects.create_user("hr-member", password="pw-member-123")
    member.groups.add(hr_group)
    return member


class TestRegistry:
    """get_search_backend maps each mode to its backend."""

    def test_modes(self) -> None:
        """Each mode, by enum or by name, gets its own backend class."""
        assert isinstance(get_search_backend(SearchMode.KEYWORD), KeywordBackend)
        assert isinstance(get_search_backend("semantic"), SemanticBackend)
        assert isinstance(get_search_backend("hybrid"), HybridBackend)

    def test_unknown_mode(self) -> None:
        """An unknown mode is a ValueError."""
        with pytest.raises(ValueError, match="fuzzy"):
            get_search_backend("fuzzy")


class TestBackendContract:
    """Every mode honours the same contract."""

    @pytest.fixture(params=list(SearchMode))
    def mode(self, request: pytest.FixtureRequest) -> SearchMode:
        return request.param

    @pytest.mark.parametrize(
        "query", ["", "   ", "\t\n ", '""', "-", "--", "OR", "the", "-draft", '-"old version"']
    )
    def test_empty_query_returns_nothing(self, mode: SearchMode, user: User, query: str) -> None:
        """A query with no terms (blank, operators, stopwords, only exclusions) finds nothing."""
        make_document("Budget review", "The quarterly budget review.")
        assert run(mode, query, user=user).hits == []
        assert search_hits(query=query, mode=mode, user=user) == []

    def test_anonymous_sees_nothing(self, mode: SearchMode) -> None:
        """Without a user no document is visible."""
        make_document("Budget review", "The quarterly budget review.")
        assert run(mode, "budget review", user=None).hits == []

    def test_restricted_document_hidden_from_non_members(
        self, mode: SearchMode, user: User, other_user: User, member: User, hr_group: Group
    ) -> None:
        """A group-restricted document reaches members and its owner only."""
        public = make_document("Salary bands", "Public notes on the salary review cycle.")
        secret = make_document(
            "Salary bands 2024",
            "Confidential salary bands per grade.",
            owner=other_user,
            groups=[hr_group],
        )
        query = "Confidential salary bands per grade"
        assert ids(run(mode, query, user=user)) == [public.pk]
        assert secret.pk in ids(run(mode, query, user=member))
        assert secret.pk in ids(run(mode, query, user=other_user))
        assert ids(run(mode, query, user=member))[0] == secret.pk
        assert search_hits(query=query, mode=mode, user=user)[0].document_id == public.pk

    def test_superuser_sees_restricted(
        self, mode: SearchMode, admin_user: User, hr_group: Group
    ) -> None:
        """A superuser sees group-restricted documents."""
        secret = make_document("Salary bands", "Confidential salary bands.", groups=[hr_group])
        assert ids(run(mode, "salary bands", user=admin_user)) == [secret.pk]

    def test_filters_honoured(self, mode: SearchMode, user: User, other_user: User) -> None:
        """Tags, source types, languages, owners and dates narrow every mode."""
        text = "The quarterly budget review for the finance team."
        tagged = make_document("Budget A", text, tags=["Finance", "q3"])
        pdf = make_document("Budget B", text, source_type=Document.SourceType.PDF)
        mixed = make_document("Budget C", "분기 예산 검토 회의록입니다. 재무팀 " + text)
        owned = make_document("Budget D", text, owner=other_user)
        old = make_document("Budget E", text)
        Document.objects.filter(pk=old.pk).update(
            updated_at=datetime.datetime(2020, 1, 15, 12, tzinfo=datetime.UTC)
        )
        everything = {tagged.pk, pdf.pk, mixed.pk, owned.pk, old.pk}
        cases: list[tuple[SearchFilters, set[int]]] = [
            (SearchFilters(), everything),
            (SearchFilters(tags=("finance",)), {tagged.pk}),
            (SearchFilters(tags=("q3", "nope")), {tagged.pk}),
            (SearchFilters(source_types=("pdf",)), {pdf.pk}),
            (SearchFilters(languages=("mixed",)), {mixed.pk}),
            (SearchFilters(languages=("en",)), everything - {mixed.pk}),
            (SearchFilters(owners=(other_user.pk,)), {owned.pk}),
            (SearchFilters(date_to=datetime.date(2020, 12, 31)), {old.pk}),
            (SearchFilters(date_from=datetime.date(2021, 1, 1)), everything - {old.pk}),
            (SearchFilters(date_from=timezone.localdate() + datetime.timedelta(days=2)), set()),
            (SearchFilters(tags=("finance",), source_types=("pdf",)), set()),
            (SearchFilters(document_ids=(pdf.pk, owned.pk)), {pdf.pk, owned.pk}),
        ]
        for filters, expected in cases:
            found = ids(run(mode, "budget review", user=user, filters=filters))
            assert set(found) == expected, filters
            assert len(found) == len(expected), filters

    def test_one_result_per_document(self, mode: SearchMode, user: User) -> None:
        """A document with many matching chunks is ranked once."""
        sentence = "The budget review covers travel, hardware and budget review items. "
        long = make_document("Long budget review", sentence * 60)
        assert long.chunks.count() > 3
        short = make_document("Budget", "A budget review.")
        found = ids(run(mode, "budget review", user=user))
        assert sorted(found) == sorted({long.pk, short.pk})

    def test_ranks_are_consecutive(self, mode: SearchMode, user: User) -> None:
        """Hits come best first, ranked 1, 2, 3 ... with non-increasing scores."""
        for n in range(5):
            make_document(f"Budget {n}", "budget review " * (n + 1) + "misc words " * 5)
        hits = run(mode, "budget review", user=user).hits
        assert [hit.rank for hit in hits] == list(range(1, len(hits) + 1))
        scores = [hit.score for hit in hits]
        assert scores == sorted(scores, reverse=True)

    def test_limit_honoured(self, mode: SearchMode, user: User) -> None:
        """No more than ``limit`` hits come back."""
        embed_all(
            [
                make_document(f"Budget {n}", f"budget review number {n}", index=False)
                for n in range(8)
            ]
        )
        assert len(run(mode, "budget review", user=user, limit=3).hits) == 3

    def test_excluded_word_removes_documents(self, mode: SearchMode, user: User) -> None:
        """-word drops every document containing the word, in any form."""
        draft = make_document("Budget review", "The budget review, still a draft.")
        drafts = make_document("Budget", "Budget review drafts for the board.")
        final = make_document("Budget review", "The final budget review.")
        found = ids(run(mode, "budget review -draft", user=user))
        assert found == [final.pk]
        assert draft.pk in ids(run(mode, "budget review", user=user))
        assert drafts.pk in ids(run(mode, "budget review", user=user))

    def test_excluded_word_in_title(self, mode: SearchMode, user: User) -> None:
        """An excluded word in the title excludes the document too."""
        make_document("Draft budget", "The budget review for the board.")
        final = make_document("Final budget", "The budget review for the board.")
        assert ids(run(mode, "budget -draft", user=user)) == [final.pk]

    def test_excluded_korean_word(self, mode: SearchMode, user: User) -> None:
        """-임베딩은 drops documents with 임베딩 in any particle form."""
        make_document("문서 하나", "임베딩을 이용한 검색 방법")
        kept = make_document("문서 둘", "키워드를 이용한 검색 방법")
        assert ids(run(mode, "검색 방법 -임베딩은", user=user)) == [kept.pk]

    def test_excluded_phrase(self, mode: SearchMode, user: User) -> None:
        """-"phrase" drops documents with the words adjacent, not apart."""
        make_document("Budget", "The budget in its draft version.")
        apart = make_document("Budget", "The budget version follows the draft.")
        assert ids(run(mode, 'budget -"draft version"', user=user)) == [apart.pk]

    def test_excluded_hyphenated_word(self, mode: SearchMode, user: User) -> None:
        """-e-mail drops documents with "e-mail" but keeps those with just "mail"."""
        make_document("Budget", "Send the budget by e-mail.")
        mail = make_document("Budget", "Send the budget to the mail room.")
        assert ids(run(mode, "budget -e-mail", user=user)) == [mail.pk]

    def test_phrase_required(self, mode: SearchMode, user: User) -> None:
        """A quoted phrase matches its words adjacent and in order only."""
        adjacent = make_document("Rules", "Every password policy applies to staff.")
        make_document("Rules", "The policy on a password: twelve characters.")
        make_document("Rules", "Password rules only.")
        make_document("Rules", "Policy password reversed order.")
        assert ids(run(mode, '"password policy"', user=user)) == [adjacent.pk]

    def test_phrase_matches_inflections(self, mode: SearchMode, user: User) -> None:
        """Phrase words are analysed: "password policies" matches "password policy"."""
        adjacent = make_document("Rules", "The password policy applies.")
        assert ids(run(mode, '"passwords policies"', user=user)) == [adjacent.pk]

    def test_korean_phrase_with_particles(self, mode: SearchMode, user: User) -> None:
        """A Korean phrase matches whatever particles the text uses."""
        adjacent = make_document("문서", "임베딩을 검색에 사용한다.")
        make_document("문서", "검색은 빠르고 임베딩은 느리다.")
        assert ids(run(mode, '"임베딩은 검색"', user=user)) == [adjacent.pk]

    def test_phrase_in_title(self, mode: SearchMode, user: User) -> None:
        """A phrase found only in the title matches."""
        titled = make_document("Password policy", "Rules for everyone.")
        assert ids(run(mode, '"password policy"', user=user)) == [titled.pk]

    def test_phrase_and_words(self, mode: SearchMode, user: User) -> None:
        """A phrase narrows; plain words alongside it rank but do not narrow."""
        first = make_document("Rules", "The password policy and the audit log.")
        second = make_document("Rules", "A password policy.")
        make_document("Rules", "The audit log and a password.")
        assert set(ids(run(mode, '"password policy" audit', user=user))) == {first.pk, second.pk}

    @pytest.mark.parametrize("query", METACHARACTER_QUERIES)
    def test_metacharacters_never_error(self, mode: SearchMode, user: User, query: str) -> None:
        """tsquery and SQL metacharacters in a query never raise."""
        make_document("Budget review", "The quarterly budget review.")
        run(mode, query, user=user)
        assert Document.objects.count() == 1
