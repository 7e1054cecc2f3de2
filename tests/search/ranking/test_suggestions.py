"""Tests for title suggestions: "did you mean" titles when nothing matches."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from documents.models import Document
from search.ranking.backends import SearchMode
from search.ranking.selectors import search_documents, title_suggestions
from tests.factories import make_document

pytestmark = pytest.mark.django_db


class TestSearchSuggestions:
    """A keyword search without hits offers visible titles spelled like the query."""

    def test_misspelled_query_suggests_title(self, user: User) -> None:
        """A typo finds nothing but suggests the title it resembles."""
        policy = make_document("Password policy", "Rules for everyone.")
        make_document("Passport renewal", "Travel documents.")
        page = search_documents(query="pasword", mode=SearchMode.KEYWORD, user=user)
        assert page.items == []
        assert [s.document_id for s in page.suggestions] == [policy.pk]
        assert page.suggestions[0].title == "Password policy"
        assert 0 < page.suggestions[0].similarity <= 1

    def test_misspelled_phrase_suggests_title(self, user: User) -> None:
        """Several misspelled words are matched against the title together."""
        policy = make_document("Password policy", "Rules for everyone.")
        page = search_documents(query="pasword polcy", mode=SearchMode.KEYWORD, user=user)
        assert page.items == []
        assert [s.document_id for s in page.suggestions] == [policy.pk]

    def test_hybrid_without_hits_suggests(self, user: User) -> None:
        """Hybrid search suggests too when it finds nothing."""
        policy = make_document("Password policy", "Rules for everyone.")
        page = search_documents(query='"pasword polcy"', mode=SearchMode.HYBRID, user=user)
        assert page.items == []
        assert [s.document_id for s in page.suggestions] == [policy.pk]

    def test_excluded_words_do_not_dilute_suggestions(self, user: User) -> None:
        """Only the wanted words are compared with titles, not -exclusions."""
        policy = make_document("Password policy", "Rules for everyone.")
        page = search_documents(
            query='pasword -rules -"for everyone"', mode=SearchMode.KEYWORD, user=user
        )
        assert page.items == []
        assert [s.document_id for s in page.suggestions] == [policy.pk]

    def test_semantic_mode_never_suggests(self, user: User) -> None:
        """Semantic search always ranks something, so it never suggests."""
        make_document("Password policy", "Rules for everyone.")
        page = search_documents(query="pasword", mode=SearchMode.SEMANTIC, user=user)
        assert page.suggestions == []

    def test_no_suggestions_with_hits(self, user: User) -> None:
        """A search that finds something suggests nothing."""
        make_document("Password policy", "Rules for everyone.")
        page = search_documents(query="password", mode=SearchMode.KEYWORD, user=user)
        assert len(page.items) == 1
        assert page.suggestions == []

    def test_unrelated_query_suggests_nothing(self, user: User) -> None:
        """A query unlike every title suggests nothing."""
        make_document("Password policy", "Rules for everyone.")
        page = search_documents(query="zebra", mode=SearchMode.KEYWORD, user=user)
        assert page.items == []
        assert page.suggestions == []

    def test_blank_query_suggests_nothing(self, user: User) -> None:
        """An empty query neither searches nor suggests."""
        make_document("Password policy", "Rules for everyone.")
        page = search_documents(query="   ", mode=SearchMode.KEYWORD, user=user)
        assert page.items == []
        assert page.suggestions == []


class TestSuggestionVisibility:
    """Suggestions come only from documents the user may see."""

    @pytest.fixture
    def secret(self, other_user: User, hr_group: Group) -> Document:
        return make_document("Salary bands", "Confidential.", owner=other_user, groups=[hr_group])

    def test_restricted_title_not_suggested(self, user: User, secret: Document) -> None:
        """A user outside the group is never shown a restricted title."""
        page = search_documents(query="sallary", mode=SearchMode.KEYWORD, user=user)
        assert page.items == []
        assert page.suggestions == []

    def test_member_gets_restricted_title(
        self, user: User, secret: Document, hr_group: Group
    ) -> None:
        """A group member is offered the restricted title."""
        user.groups.add(hr_group)
        page = search_documents(query="sallary", mode=SearchMode.KEYWORD, user=user)
        assert [s.document_id for s in page.suggestions] == [secret.pk]

    def test_owner_gets_restricted_title(self, other_user: User, secret: Document) -> None:
        """The owner is offered their restricted title."""
        page = search_documents(query="sallary", mode=SearchMode.KEYWORD, user=other_user)
        assert [s.document_id for s in page.suggestions] == [secret.pk]

    def test_visible_title_suggested_restricted_not(self, user: User, secret: Document) -> None:
        """Of two similar titles only the visible one is suggested."""
        public = make_document("Salary review", "Public.")
        page = search_documents(query="sallary", mode=SearchMode.KEYWORD, user=user)
        assert [s.document_id for s in page.suggestions] == [public.pk]

    def test_anonymous_gets_nothing(self, secret: Document) -> None:
        """Without a user there is nothing to search or suggest, and nothing raises."""
        make_document("Salary review", "Public.")
        page = search_documents(query="sallary", mode=SearchMode.KEYWORD, user=None)
        assert page.items == []
        assert page.suggestions == []
        assert title_suggestions("sallary", queryset=Document.objects.none()) == []


class TestTitleSuggestions:
    """title_suggestions ranks titles by trigram word similarity."""

    def test_best_match_first_and_limited(self, user: User) -> None:
        """Closer titles come first, at most ``limit`` of them."""
        exact = make_document("Password", "x")
        close = make_document("Password reset guide", "x")
        for n in range(4):
            make_document(f"Password policy {n}", "x")
        suggestions = title_suggestions(
            "password", queryset=Document.objects.visible_to(user), limit=3
        )
        assert len(suggestions) == 3
        assert suggestions[0].similarity == 1.0
        assert {suggestions[0].document_id} <= {exact.pk, close.pk}
        similarities = [s.similarity for s in suggestions]
        assert similarities == sorted(similarities, reverse=True)

    @pytest.mark.parametrize("text", ["", "  ", "%", "' OR 1=1 --", "\\", "<% %>"])
    def test_odd_input_never_raises(self, user: User, text: str) -> None:
        """Blank or hostile text is answered, never an error."""
        make_document("Password policy", "x")
        suggestions = title_suggestions(text, queryset=Document.objects.visible_to(user))
        assert all(s.title == "Password policy" for s in suggestions)
