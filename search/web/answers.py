"""The answer card: on the search page for questions, the /ask page, its stream and the API."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.http import HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from search.answers import generative
from search.answers.selectors import extractive_answer, is_question
from search.answers.services import answer_log_create, answer_question, answer_stream
from search.ranking.backends import SearchFilters
from search.web.forms import FILTER_FIELDS, SearchForm
from search.web.limits import search_rate_limit

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from django.http import HttpRequest

    from search.answers.selectors import Answer, Citation
    from search.ranking.backends import SearchHit

#: The card's words in the question's language.
LABELS = {
    "ko": {
        "heading": "문서에서 찾은 답변",
        "generated": "언어 모델이 아래 문서로 작성한 답변",
        "none": "문서에서 답을 찾지 못했습니다.",
        "sources": "출처",
    },
    "en": {
        "heading": "Answer from your documents",
        "generated": "Written by the language model from the passages below",
        "none": "No answer found in your documents.",
        "sources": "Sources",
    },
}


def labels(language: str) -> dict[str, str]:
    return LABELS["ko" if language in ("ko", "mixed") else "en"]


def citation_url(citation: Citation) -> str:
    """The document page, scrolled to the cited passage (the answer highlighted in it)."""
    passage = citation.passage
    url = f"{reverse('search:document', args=[passage.document_id])}?passage={passage.chunk_id}"
    if citation.highlight:
        url += f"&hl={citation.highlight[0]}-{citation.highlight[1]}"
    return url + "#passage"


def card_context(
    answer: Answer, *, stream: bool, filters: QueryDict | None = None
) -> dict[str, Any]:
    """What ``search/_answer.html`` shows; ``filters``: the page's, for the stream."""
    stream_url = ""
    if stream:
        params = QueryDict(mutable=True)
        if filters is not None:
            for name in FILTER_FIELDS:
                params.setlist(name, filters.getlist(name))
        params["q"] = answer.question
        stream_url = f"{reverse('search:ask_stream')}?{params.urlencode()}"
    return {
        "answer": answer,
        "labels": labels(answer.language),
        "citations": [(c, citation_url(c)) for c in answer.citations],
        "stream_url": stream_url,
    }


def search_card(
    request: HttpRequest,
    query: str,
    *,
    filters: SearchFilters,
    hits: Sequence[SearchHit] | None = None,
) -> dict[str, Any] | None:
    """The answer card of the search page, for a query that reads as a question.

    Drawn from the page's own filters, and from its ranking (``hits``) when
    that is the hybrid relevance order the answerer reads. Extractive at
    once; with a language model configured the page streams the generated
    answer into the card (the stream logs the answer), else the extractive
    answer is logged here.
    """
    if not is_question(query):
        return None
    answer = extractive_answer(query, user=request.user, filters=filters, hits=hits)
    streaming = generative.is_configured() and bool(answer.passages)
    if not streaming:
        answer_log_create(answer=answer, user=request.user, source="web")
    return card_context(answer, stream=streaming, filters=request.GET)


def _stream_filters(request: HttpRequest) -> SearchFilters:
    """The search page's filters carried by the stream's URL (none if invalid)."""
    form = SearchForm(request.GET)
    return form.to_filters() if form.is_valid() else SearchFilters()


@require_GET
@search_rate_limit
def ask_view(request: HttpRequest) -> HttpResponse:
    """Ask a question: the answer and its citations, whole (no JavaScript needed)."""
    question = (request.GET.get("q") or "").strip()[:1000]
    context: dict[str, Any] = {"question": question, "card": None}
    if question:
        context["card"] = card_context(answer_question(question, user=request.user), stream=False)
    return render(request, "search/ask.html", context)


@require_GET
@search_rate_limit
def ask_stream_view(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """The generated answer as it is written, one JSON object per line.

    ``{"delta": "..."}`` lines, then ``{"html": "<the finished card>"}``.
    """
    question = (request.GET.get("q") or "").strip()[:1000]
    if not question:
        return HttpResponse("Give a question in q.", status=400, content_type="text/plain")
    filters = _stream_filters(request)

    def lines() -> Iterator[str]:
        for event in answer_stream(question, user=request.user, filters=filters):
            if "delta" in event:
                yield json.dumps({"delta": event["delta"]}, ensure_ascii=False) + "\n"
            else:
                html = render(
                    request, "search/_answer.html", card_context(event["answer"], stream=False)
                ).content.decode()
                yield json.dumps({"html": html}, ensure_ascii=False) + "\n"

    response = StreamingHttpResponse(lines(), content_type="application/x-ndjson")
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"  # Let a proxy pass the lines on as they come.
    return response
