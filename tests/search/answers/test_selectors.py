"""Extractive answers over the database: visible passages only, citations, no guessing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from django.urls import reverse

from search.answers.selectors import extractive_answer, is_question
from search.ranking.backends.hybrid import HybridBackend

if TYPE_CHECKING:
    from django.contrib.auth.models import Group, User
    from django.test import Client

    from documents.models import Document

pytestmark = pytest.mark.django_db

QUESTION = "3년 이상 근속하면 연차가 최대 며칠인가요?"


class TestIsQuestion:
    @pytest.mark.parametrize(
        "text",
        [
            QUESTION,
            "연차는 어떻게 신청하나요",
            "휴가 신청 방법은?",
            "How many vacation days do I get",
            "remote work approval?",
        ],
    )
    def test_questions(self, text: str) -> None:
        assert is_question(text)

    @pytest.mark.parametrize("text", ["vacation policy", "연차 규정", "remote work", "휴가 신청"])
    def test_keywords_are_not_questions(self, text: str) -> None:
        assert not is_question(text)


class TestExtractiveAnswer:
    def test_korean_question_answered_from_its_passage(
        self, user: User, vacation: Document, remote: Document
    ) -> None:
        answer = extractive_answer(QUESTION, user=user)
        assert answer.kind == "extractive"
        assert answer.language == "ko"
        assert "25일" in answer.text
        first = answer.citations[0]
        assert first.number == 1 and first.passage.document_id == vacation.pk
        assert first.highlight is not None
        start, end = first.highlight
        assert first.passage.text[start:end] == answer.text
        offset = first.passage.start_offset
        assert vacation.text[offset + start : offset + end] == answer.text

    def test_english_question(self, user: User, vacation: Document, remote: Document) -> None:
        answer = extractive_answer("Who approves remote work requests?", user=user)
        assert answer.kind == "extractive"
        assert "team lead" in answer.text
        assert answer.citations[0].passage.document_id == remote.pk

    def test_a_restricted_document_never_answers_or_is_cited(
        self, other_user: User, vacation: Document, secret: Document
    ) -> None:
        """The secret document matches the question better, but the outsider may not see it."""
        answer = extractive_answer(QUESTION, user=other_user)
        assert "40일" not in answer.text
        cited = {c.passage.document_id for c in answer.citations}
        assert secret.pk not in cited
        assert secret.pk not in {p.document_id for p in answer.passages}
        assert cited == {vacation.pk}

    def test_a_member_may_be_answered_from_it(
        self, user: User, hr_group: Group, vacation: Document, secret: Document
    ) -> None:
        user.groups.add(hr_group)
        answer = extractive_answer("임원은 연차가 최대 며칠인가요?", user=user)
        assert "40일" in answer.text
        assert answer.citations[0].passage.document_id == secret.pk

    def test_no_answer_rather_than_a_guess(self, user: User, vacation: Document) -> None:
        """Nothing in the collection is about server backups: kind "none", no text."""
        answer = extractive_answer("서버 백업 주기는 어떻게 되나요?", user=user)
        assert answer.kind == "none"
        assert answer.text == ""

    def test_empty_collection_and_empty_question(self, user: User) -> None:
        assert extractive_answer(QUESTION, user=user).kind == "none"
        empty = extractive_answer("   ", user=user)
        assert empty.kind == "none" and empty.citations == []


class TestSearchPageCard:
    def test_the_card_reads_the_pages_own_ranking(
        self,
        client: Client,
        user: User,
        vacation: Document,
        remote: Document,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A hybrid page ranks once: the card answers from the results shown."""
        calls: list[str] = []
        original = HybridBackend.search

        def counted(self: HybridBackend, *args: Any, **kwargs: Any) -> Any:
            calls.append("hybrid")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(HybridBackend, "search", counted)
        client.force_login(user)
        html = client.get(reverse("search:search"), {"q": QUESTION}).content.decode()
        assert "25일" in html and f"/documents/{vacation.pk}/?passage=" in html
        assert calls == ["hybrid"]
        # Another mode's order is not the answerer's: the card ranks for itself.
        calls.clear()
        client.get(reverse("search:search"), {"q": QUESTION, "mode": "keyword"})
        assert calls == ["hybrid"]

    def test_the_card_keeps_the_pages_filters(
        self, client: Client, user: User, vacation: Document, remote: Document
    ) -> None:
        """Filtered to another language, the Korean policy cannot answer."""
        client.force_login(user)
        korean = client.get(reverse("search:search"), {"q": QUESTION, "language": "ko"})
        assert "25일" in korean.content.decode()
        html = client.get(
            reverse("search:search"), {"q": QUESTION, "language": "en"}
        ).content.decode()
        assert "25일" not in html
        assert f"/documents/{vacation.pk}/?passage=" not in html
