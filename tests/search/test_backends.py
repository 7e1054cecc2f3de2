"""Tests for the search backends: one contract for every mode, then each mode."""

from __future__ import annotations

import dataclasses
import datetime
import random
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from documents.embeddings import FakeProvider, set_embedder
from documents.models import Chunk, Document
from documents.services import document_create, documents_embed
from search.ranking.backends import (
    BackendResult,
    SearchFilters,
    SearchHit,
    SearchMode,
    get_search_backend,
)
from search.ranking.backends.hybrid import HybridBackend
from search.ranking.backends.keyword import KeywordBackend
from search.ranking.backends.semantic import (
    SemanticBackend,
    clear_query_cache,
    embed_query,
    exact_scan_needed,
)
from search.ranking.query import parse_query
from search.ranking.selectors import search_hits, visible_documents
from tests.factories import make_document

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsWrapper

    from search.ranking.backends.sql import VectorQuery
    from search.ranking.query import ParsedQuery

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


def run(
    mode: SearchMode | str,
    query: str,
    *,
    user: User | None,
    filters: SearchFilters | None = None,
    limit: int = 10,
) -> BackendResult:
    """Search as ``user`` through the backend of ``mode`` directly."""
    queryset = visible_documents(user, filters or SearchFilters())
    return get_search_backend(mode).search(parse_query(query), queryset=queryset, limit=limit)


def ids(result: BackendResult | list[SearchHit]) -> list[int]:
    hits = result.hits if isinstance(result, BackendResult) else result
    return [hit.document_id for hit in hits]


def embed_all(documents: list[Document]) -> None:
    """Index many documents in one batch (shared embedding calls)."""
    documents_embed(document_ids=[d.pk for d in documents])


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


def convex_fusion(
    keyword: list[SearchHit], semantic: list[SearchHit], *, semantic_weight: float
) -> list[tuple[int, float]]:
    """Pure-Python convex fusion: the test oracle for the hybrid SQL.

    Keyword scores are divided by their maximum, semantic scores min-max
    scaled (all 1 when they are all equal); a missing leg counts 0. Ties go
    to the lower document id.
    """
    keyword_scores = {h.document_id: h.score for h in keyword}
    semantic_scores = {h.document_id: h.score for h in semantic}
    keyword_hi = max(keyword_scores.values(), default=0.0)
    semantic_lo = min(semantic_scores.values(), default=0.0)
    semantic_hi = max(semantic_scores.values(), default=0.0)
    fused: dict[int, float] = {}
    for doc in keyword_scores.keys() | semantic_scores.keys():
        kw = keyword_scores[doc] / keyword_hi if doc in keyword_scores and keyword_hi else 0.0
        if doc not in semantic_scores:
            sem = 0.0
        elif semantic_hi == semantic_lo:
            sem = 1.0
        else:
            sem = (semantic_scores[doc] - semantic_lo) / (semantic_hi - semantic_lo)
        fused[doc] = (1 - semantic_weight) * kw + semantic_weight * sem
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


class TestHybridBackend:
    """Keyword and semantic legs fused in one statement."""

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
        """keyword_rank and semantic_rank are the documents' ranks in each mode."""
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
                assert hit.keyword_score == (kw.score if kw else None)
                assert hit.semantic_rank == (sem.rank if sem else None)
                assert hit.semantic_score == (sem.score if sem else None)
                if sem is not None:
                    assert hit.chunk_id == sem.chunk_id
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
            expected = convex_fusion(keyword, semantic, semantic_weight=0.5)[:10]
            hybrid = run(SearchMode.HYBRID, text, user=user, limit=10).hits
            assert [h.document_id for h in hybrid] == [doc for doc, _ in expected], text
            assert [h.score for h in hybrid] == pytest.approx([s for _, s in expected])


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
