"""Answering a question, with a language model when one is configured, and logging it.

The extractive answer always comes first (it needs no model and finds the
passages); a configured language model then writes the answer from those
passages. If it fails or times out the extractive answer stands, with a note.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AnonymousUser

from search.answers import generative
from search.answers.models import AnswerLog
from search.answers.selectors import Answer, Citation, extractive_answer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from django.contrib.auth.models import User

    from search.answers.extractive import Passage
    from search.ranking.backends import SearchFilters

logger = logging.getLogger(__name__)

FALLBACK_NOTE = (
    "The language model did not answer ({reason}); this is the sentence of your "
    "documents that answers best."
)


def _prompted(answer: Answer) -> list[Passage]:
    return answer.passages[: generative.PROMPT_PASSAGES]


def _apply_generated(answer: Answer, text: str) -> None:
    """Turn the extractive answer into the model's, citing the passages it names."""
    passages = _prompted(answer)
    if generative.is_refusal(text):
        answer.kind, answer.text, answer.citations = "none", "", []
        answer.notes.append("The language model found no answer in these passages.")
        return
    answer.kind, answer.text = "generated", text.strip()
    answer.citations = [
        Citation(n, passages[n - 1]) for n in generative.cited_numbers(text, passages=len(passages))
    ]


def _fall_back(answer: Answer, error: Exception) -> None:
    logger.warning("Language model failed for %r: %s", answer.question[:80], error)
    answer.notes.append(FALLBACK_NOTE.format(reason=type(error).__name__.removesuffix("Error")))


def answer_question(
    question: str, *, user: User | AnonymousUser | None, source: str = "web", generate: bool = True
) -> Answer:
    """Answer ``question`` from the documents ``user`` may see, and log it."""
    started = time.perf_counter()
    answer = extractive_answer(question, user=user)
    if generate and generative.is_configured() and answer.passages:
        messages = generative.prompt_messages(
            answer.question, _prompted(answer), language=answer.language
        )
        try:
            _apply_generated(answer, generative.generate(messages))
        except generative.GenerationError as exc:
            _fall_back(answer, exc)
    answer.latency_ms = (time.perf_counter() - started) * 1000
    answer_log_create(answer=answer, user=user, source=source)
    return answer


def answer_stream(
    question: str,
    *,
    user: User | AnonymousUser | None,
    filters: SearchFilters | None = None,
) -> Iterator[dict[str, Any]]:
    """The generated answer as it is written: ``{"delta": text}`` events, then
    ``{"answer": Answer}`` (the final one, possibly the extractive fallback)."""
    started = time.perf_counter()
    answer = extractive_answer(question, user=user, filters=filters)
    if generative.is_configured() and answer.passages:
        messages = generative.prompt_messages(
            answer.question, _prompted(answer), language=answer.language
        )
        written: list[str] = []
        try:
            for delta in generative.stream(messages):
                written.append(delta)
                yield {"delta": delta}
            _apply_generated(answer, "".join(written))
        except generative.GenerationError as exc:
            _fall_back(answer, exc)
    answer.latency_ms = (time.perf_counter() - started) * 1000
    answer_log_create(answer=answer, user=user, source="web")
    yield {"answer": answer}


def answer_log_create(
    *, answer: Answer, user: User | AnonymousUser | None, source: str
) -> AnswerLog:
    """Record an answer, with what it cited, for the analysts."""
    owner = None if user is None or isinstance(user, AnonymousUser) else user
    return AnswerLog.objects.create(
        user=owner,
        question=answer.question,
        kind=answer.kind,
        answer=answer.text,
        citations=[
            {
                "number": c.number,
                "document_id": c.passage.document_id,
                "chunk_id": c.passage.chunk_id,
            }
            for c in answer.citations
        ],
        note=" ".join(answer.notes),
        latency_ms=max(answer.latency_ms, 0.0),
        source=source,
    )


def answer_json(answer: Answer) -> dict[str, Any]:
    """An answer as the API returns it (links are added by the view)."""
    return {
        "question": answer.question,
        "language": answer.language,
        "kind": answer.kind,
        "answer": answer.text,
        "notes": answer.notes,
        "latency_ms": round(answer.latency_ms, 1),
        "citations": [
            {
                "number": c.number,
                "document_id": c.passage.document_id,
                "chunk_id": c.passage.chunk_id,
                "title": c.passage.title,
                "passage": c.passage.text,
                "highlight": list(c.highlight) if c.highlight else None,
            }
            for c in answer.citations
        ],
    }


__all__ = ["answer_json", "answer_log_create", "answer_question", "answer_stream"]
