"""The extractive answerer: the sentence that answers, or none (search.answers.extractive)."""

from __future__ import annotations

import dataclasses

from documents.analysis import analyze
from search.answers.extractive import (
    MAX_SENTENCE_CHARS,
    MIN_SCORE,
    Passage,
    best_sentence,
    idf_weights,
    is_heading,
    scored_sentences,
)

VACATION = Passage(
    chunk_id=1,
    document_id=10,
    title="휴가 규정",
    text="직원은 매년 15일의 연차를 받습니다. 3년 이상 근속하면 연차는 최대 25일까지 늘어납니다. "
    "휴가 신청은 인사 포털에서 합니다.",
    start_offset=0,
    rank=0,
)
EXPENSES = Passage(
    chunk_id=2,
    document_id=11,
    title="경비 규정",
    text="경비는 영수증을 첨부해 30일 안에 청구합니다.",
    start_offset=0,
    rank=1,
)


def weights_for(
    question: str, df: dict[str, int] | None = None
) -> tuple[list[str], dict[str, float]]:
    terms = analyze(question)
    return terms, idf_weights(terms, df=df or {}, n=10)


class TestBestSentence:
    def test_the_sentence_with_the_questions_rare_words_answers(self) -> None:
        """ "근속" and "연차" are in one sentence only: it is the answer, with its span."""
        terms, weights = weights_for("3년 이상 근속하면 연차가 최대 며칠인가요?")
        extract = best_sentence(scored_sentences(terms, weights, [EXPENSES, VACATION]))
        assert extract is not None
        assert extract.passage is VACATION
        assert extract.text == "3년 이상 근속하면 연차는 최대 25일까지 늘어납니다."
        assert VACATION.text[extract.start : extract.end] == extract.text
        assert extract.score >= MIN_SCORE

    def test_rare_terms_weigh_more(self) -> None:
        """A term in every document (df = n) counts little against a rare one."""
        weights = idf_weights(["연차", "직원"], df={"연차": 1, "직원": 10}, n=10)
        assert weights["연차"] > 5 * weights["직원"]

    def test_no_sentence_covering_enough_of_the_question_is_no_answer(self) -> None:
        """Unrelated passages: None rather than a guess."""
        terms, weights = weights_for("서버 백업 주기는 어떻게 되나요?")
        assert best_sentence(scored_sentences(terms, weights, [VACATION, EXPENSES])) is None

    def test_a_tie_goes_to_the_better_ranked_passage(self) -> None:
        """The same sentence in two passages: the one search ranked first wins."""
        twin = dataclasses.replace(VACATION, chunk_id=3, document_id=12, rank=2)
        terms, weights = weights_for("근속 연차 최대")
        extract = best_sentence(scored_sentences(terms, weights, [twin, VACATION]))
        assert extract is not None and extract.passage is VACATION

    def test_a_tie_in_one_document_goes_to_the_earlier_sentence(self) -> None:
        """Chunks overlap: the document's earlier sentence wins, wherever its chunk starts."""
        first = Passage(6, 30, "Remote", "Staff may work remotely two days per week.", 100, 0)
        later = Passage(7, 30, "Remote", "x. Remote days are logged every week.", 140, 0)
        terms, weights = weights_for("remote days week")
        extract = best_sentence(scored_sentences(terms, weights, [later, first]))
        assert extract is not None and extract.passage is first

    def test_a_heading_holding_the_questions_words_is_no_answer(self) -> None:
        text = "## Working From Abroad\n\nEmployees may work abroad for 20 days a year."
        passage = Passage(8, 31, "Remote", text, 0, 0)
        terms, weights = weights_for("How long can I work from abroad?")
        extract = best_sentence(scored_sentences(terms, weights, [passage]))
        assert extract is not None and extract.text.startswith("Employees may work abroad")

    def test_an_endless_sentence_is_cut(self) -> None:
        """A "sentence" without a stop (a table row) is cut near MAX_SENTENCE_CHARS."""
        long = Passage(5, 20, "표", "연차 근속 최대 " + "가나다라 " * 200, 0, 0)
        terms, weights = weights_for("근속 연차 최대")
        extract = best_sentence(scored_sentences(terms, weights, [long]))
        assert extract is not None
        assert 0 < extract.end - extract.start <= MAX_SENTENCE_CHARS

    def test_no_terms_or_no_passages_is_no_answer(self) -> None:
        assert scored_sentences([], {}, [VACATION]) == []
        terms, weights = weights_for("연차")
        assert best_sentence(scored_sentences(terms, weights, [])) is None


class TestIsHeading:
    def test_titles(self) -> None:
        assert is_heading("## Working From Abroad")
        assert is_heading("휴가 규정")
        assert is_heading("Hybrid Schedule")

    def test_sentences(self) -> None:
        assert not is_heading("연차는 최대 25일입니다.")
        assert not is_heading("3년 이상 근속하면 연차가 늘어난다")
        assert not is_heading("Staff may work remotely.")
        assert not is_heading("This line has more than six words but no full stop")
