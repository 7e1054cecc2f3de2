"""The JSON API: search, documents and their related documents, the OpenAPI schema."""

from __future__ import annotations

import dataclasses
import functools
import html
import json
from typing import TYPE_CHECKING, Any, Final

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from django.urls import reverse
from django.utils.html import strip_tags
from django.views.decorators.csrf import csrf_exempt

from documents.selectors import document_detail
from search import related
from search.answers.services import answer_json, answer_question
from search.related import related_documents
from search.web.answers import citation_url
from search.web.forms import SearchForm
from search.web.limits import search_rate_limit
from search.web.openapi import openapi_schema
from search.web.views import run_search

if TYPE_CHECKING:
    from collections.abc import Callable

    from django.http import HttpRequest

    from documents.models import Document
    from search.ranking.selectors import ResultItem

    View = Callable[..., HttpResponse]

# Escapes "<", ">" and "&" inside JSON strings, as Django's json_script does,
# so that no API body contains markup even if a client sniffs it as HTML.
_JSON_ESCAPES: Final = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


def _json(data: dict[str, Any], *, status: int = 200) -> HttpResponse:
    body = json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False)
    return HttpResponse(
        body.translate(_JSON_ESCAPES), status=status, content_type="application/json"
    )


def _json_error(
    message: str, *, status: int, fields: dict[str, list[str]] | None = None
) -> HttpResponse:
    data: dict[str, Any] = {"error": message}
    if fields is not None:
        data["fields"] = fields
    return _json(data, status=status)


def api_get(view: View) -> View:
    """GET-only JSON endpoint: other methods get a JSON 405.

    Exempt from CSRF because it only reads; otherwise a POST would get the
    CSRF failure page (403) rather than the 405 it deserves.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            response = _json_error("Method not allowed; use GET.", status=405)
            response["Allow"] = "GET, HEAD"
            return response
        return view(request, *args, **kwargs)

    return csrf_exempt(wrapper)


@api_get
@search_rate_limit
def api_search(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET)
    if not form.is_valid():
        fields = {name: [str(e) for e in errors] for name, errors in form.errors.items()}
        return _json_error("Invalid search parameters.", status=400, fields=fields)
    if not form.cleaned_data["q"]:
        return _json_error(
            "The q parameter is required.",
            status=400,
            fields={"q": ["Give a non-blank query."]},
        )
    page, log = run_search(request, form, source="api", page_size=form.cleaned_data["k"])
    return _json(
        {
            "query": page.query,
            "mode": page.mode,
            "search_id": log.pk,
            "total": page.total,
            "page": page.page,
            "k": page.page_size,
            "has_next": page.has_next,
            "reranked": page.reranked,
            "timings_ms": page.timings,
            "results": [_result_json(request, item) for item in page.items],
            "suggestions": [
                {
                    "id": s.document_id,
                    "title": s.title,
                    "similarity": s.similarity,
                    "url": _document_url(request, s.document_id),
                }
                for s in page.suggestions
            ],
            "notes": page.notes,
        }
    )


@api_get
def api_document(request: HttpRequest, pk: int) -> HttpResponse:
    document = document_detail(user=request.user, document_id=pk)
    if document is None:
        return _json_error("Document not found.", status=404)
    return _json(_document_json(request, document))


@api_get
def api_related(request: HttpRequest, pk: int) -> HttpResponse:
    """The documents most related to a visible document, with scores and passages."""
    document = document_detail(user=request.user, document_id=pk)
    if document is None:
        return _json_error("Document not found.", status=404)
    raw = request.GET.get("k", str(related.DEFAULT_K))
    if not raw.isdigit() or not 1 <= int(raw) <= related.MAX_K:
        return _json_error(f"k must be a whole number from 1 to {related.MAX_K}.", status=400)
    items = related_documents(user=request.user, document=document, k=int(raw))
    return _json(
        {
            "id": document.pk,
            "indexed": document.embedding is not None,
            "results": [
                {**dataclasses.asdict(item), "url": _document_url(request, item.document_id)}
                for item in items
            ],
        }
    )


@api_get
def api_schema(request: HttpRequest) -> HttpResponse:
    """The OpenAPI 3.1 document of this API (behind login or token, like the rest)."""
    return _json(openapi_schema(server_url=request.build_absolute_uri("/")))


def _document_url(request: HttpRequest, document_id: int) -> str:
    return request.build_absolute_uri(reverse("search:document", args=[document_id]))


def _result_json(request: HttpRequest, item: ResultItem) -> dict[str, Any]:
    document, hit = item.document, item.hit
    return {
        "id": document.pk,
        "title": document.title,
        "url": _document_url(request, document.pk),
        "score": hit.score,
        "rank": hit.rank,
        "keyword_rank": hit.keyword_rank,
        "keyword_score": hit.keyword_score,
        "semantic_rank": hit.semantic_rank,
        "semantic_score": hit.semantic_score,
        "rerank_rank": hit.rerank_rank,
        "rerank_score": hit.rerank_score,
        "snippet": str(item.snippet),
        "snippet_text": html.unescape(strip_tags(item.snippet)),
        "more_matches": item.more_matches,
        "tags": document.tags,
        "source_type": document.source_type,
        "language": document.language,
        "updated_at": document.updated_at,
    }


def _document_json(request: HttpRequest, document: Document) -> dict[str, Any]:
    return {
        "id": document.pk,
        "title": document.title,
        "url": _document_url(request, document.pk),
        "text": document.text,
        "tags": document.tags,
        "source_type": document.source_type,
        "language": document.language,
        "owner": document.owner.get_username() if document.owner else None,
        "groups": [group.name for group in document.groups.all()],
        "status": document.status,
        "last_error": document.last_error,
        "embedding_model": document.embedding_model,
        "created_at": document.created_at,
        "updated_at": document.updated_at,
    }


@api_get
@search_rate_limit
def api_answer(request: HttpRequest) -> HttpResponse:
    """``GET /api/answer?q=``: the answer to a question, with its citations."""
    question = (request.GET.get("q") or "").strip()
    if not question:
        return _json_error(
            "The q parameter is required.", status=400, fields={"q": ["Ask a question."]}
        )
    answer = answer_question(question[:1000], user=request.user, source="api")
    data = answer_json(answer)
    for citation, item in zip(answer.citations, data["citations"], strict=True):
        item["url"] = request.build_absolute_uri(citation_url(citation))
    return _json(data)
