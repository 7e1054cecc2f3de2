"""Generated answers: a language model behind any OpenAI-compatible chat endpoint.

Configured by ``LLM_MODEL`` (with ``LLM_BASE_URL`` for a local server such as
vLLM or Ollama, and ``LLM_API_KEY``); off when ``LLM_MODEL`` is empty. The
prompt holds only the numbered passages the user may see (the extractive
answerer's, from hybrid search) and the question; the model must cite them
by number and say ``NO_ANSWER`` when they do not contain the answer.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from django.conf import settings

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from search.answers.extractive import Passage

#: The model's reply when the passages do not answer the question.
NO_ANSWER: Final = "NO_ANSWER"
#: Passages given to the model, and characters of each.
PROMPT_PASSAGES: Final = 5
PASSAGE_CHARS: Final = 1200
_CITATION: Final = re.compile(r"\[(\d{1,2})\]")
_LANGUAGES: Final = {"ko": "Korean", "en": "English", "mixed": "the question's language"}

SYSTEM_PROMPT: Final = (
    "You answer questions about an organisation's internal documents, using only the "
    "numbered passages given to you. Cite every passage you use by its number in square "
    "brackets, like [1] or [2][3], right after the statement it supports. If the passages "
    f"do not contain the answer, reply with exactly {NO_ANSWER} and nothing else. Be brief: "
    "one to three sentences. Answer in {language}."
)


class GenerationError(RuntimeError):
    """The language model did not answer (unreachable, timed out, refused the request)."""


def is_configured() -> bool:
    return bool(settings.LLM_MODEL)


def prompt_messages(
    question: str, passages: Sequence[Passage], *, language: str
) -> list[dict[str, str]]:
    """The chat messages: instructions, then the numbered passages and the question."""
    numbered = "\n\n".join(
        f"[{n}] {p.title}\n{p.text[:PASSAGE_CHARS]}" for n, p in enumerate(passages, start=1)
    )
    return [
        {
            "role": "system",
            "content": SYSTEM_PROMPT.format(language=_LANGUAGES.get(language, "English")),
        },
        {"role": "user", "content": f"Passages:\n\n{numbered}\n\nQuestion: {question}"},
    ]


def cited_numbers(text: str, *, passages: int) -> list[int]:
    """The passage numbers an answer cites, in order of first citation."""
    numbers = [int(n) for n in _CITATION.findall(text)]
    return list(dict.fromkeys(n for n in numbers if 1 <= n <= passages))


def is_refusal(text: str) -> bool:
    return text.strip().strip(".").upper() == NO_ANSWER


def _client() -> Any:
    import openai

    return openai.OpenAI(
        api_key=settings.LLM_API_KEY or "unset",
        base_url=settings.LLM_BASE_URL or None,
        timeout=settings.LLM_TIMEOUT,
        max_retries=0,  # A slow answer falls back to the extractive one instead.
    )


def generate(messages: list[dict[str, str]]) -> str:
    """The model's whole reply (API and tests)."""
    return "".join(stream(messages))


def stream(messages: list[dict[str, str]]) -> Iterator[str]:
    """The model's reply as it is written; GenerationError when it fails or times out."""
    import openai

    try:
        response = _client().chat.completions.create(
            model=settings.LLM_MODEL, messages=messages, stream=True, temperature=0
        )
        for event in response:
            for choice in event.choices:
                if choice.delta and choice.delta.content:
                    yield choice.delta.content
    except openai.OpenAIError as exc:
        raise GenerationError(f"{type(exc).__name__}: {exc}") from exc
