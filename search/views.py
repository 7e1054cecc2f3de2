"""Search pages and the JSON search API: bind a form, call a selector, render."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import html
import json
from typing import TYPE_CHECKING, Any, Final, cast

from django.contrib import messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.html import strip_tags
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_ratelimit.decorators import ratelimit

from config.middleware import setting_rate
from search import related
from search.forms import ApiTokenForm, ResultClickForm, SearchForm
from search.openapi import openapi_schema
from search.related import related_documents
from search.selectors import api_tokens_of, document_chunks, document_detail, search_documents
from search.services import (
    MAX_TOKENS_PER_USER,
    api_token_create,
    api_token_delete,
    search_click_create,
    search_log_create,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from django.contrib.auth.models import User
    from django.http import HttpRequest

    from documents.models import Document
    from search.models import SearchQueryLog
    from search.selectors import ResultItem, SearchPage

    View = Callable[..., HttpResponse]

# Escapes "<", ">" and "&" inside JSON strings, as Django's json_script does,
# so that no API body contains markup even if a client sniffs it as HTML.
_JSON_ESCAPES: Final = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}

# One budget per user for the search page and the API (SEARCH_RATE_LIMIT).
search_rate_limit: Final = ratelimit(
    group="search", key="user_or_ip", rate=setting_rate("SEARCH_RATE_LIMIT")
)


def home(request: HttpRequest) -> HttpResponse:
    return redirect("search:search")


def _run_search(
    request: HttpRequest, form: SearchForm, *, source: str, page_size: int | None = None
) -> tuple[SearchPage, SearchQueryLog]:
    """Search with a valid form, and log the search."""
    data = form.cleaned_data
    filters = form.to_filters()
    page = search_documents(
        query=data["q"],
        mode=data["mode"],
        user=request.user,
        filters=filters,
        page=data["page"],
        page_size=page_size,
        sort=data["sort"],
    )
    logged_filters: dict[str, object] = filters.as_dict()
    if data["sort"] != "relevance":
        logged_filters["sort"] = data["sort"]
    if page.page > 1:
        logged_filters["page"] = page.page
    log = search_log_create(
        user=request.user,
        query=page.query,
        mode=page.mode,
        filters=logged_filters,
        result_count=page.total,
        latency_ms=page.timings.get("total_ms", 0.0),
        source=source,
    )
    return page, log


def _is_htmx(request: HttpRequest) -> bool:
    # A history restore (cache miss on "back") needs the whole page.
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


@require_GET
@search_rate_limit
def search_view(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET)
    context: dict[str, Any] = {"form": form, "page": None, "search_log": None}
    if form.is_valid() and form.cleaned_data["q"]:
        context["page"], context["search_log"] = _run_search(request, form, source="web")
    template = "search/_results.html" if _is_htmx(request) else "search/search.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_GET
def document_view(request: HttpRequest, pk: int) -> HttpResponse:
    document = document_detail(user=request.user, document_id=pk)
    if document is None:
        raise Http404("No such document.")
    click = ResultClickForm(request.GET)
    if "from_search" in request.GET and click.is_valid():
        search_click_create(
            user=request.user,
            search_id=click.cleaned_data["from_search"],
            document_id=document.pk,
            rank=click.cleaned_data["rank"],
        )
    context = {
        "document": document,
        "chunks": document_chunks(document),
        "related": related_documents(user=request.user, document=document, k=related.DEFAULT_K),
    }
    return render(request, "search/document.html", context)


# -- API tokens (self-service) ----------------------------------------------


def _signed_in(request: HttpRequest) -> User:
    """The request's user: LoginRequiredMiddleware lets no anonymous one through."""
    return cast("User", request.user)


@never_cache  # The page may carry a new key.
@require_http_methods(["GET", "POST"])
def api_tokens_view(request: HttpRequest) -> HttpResponse:
    """The user's own API tokens: list them and create one (its key shown once).

    The key is rendered in the response to the POST itself, never stored in
    a message or the session, so it exists only in that one page.
    """
    form = ApiTokenForm(request.POST or None)
    tokens = api_tokens_of(user=request.user)
    new_key = None
    if request.method == "POST" and form.is_valid():
        if len(tokens) >= MAX_TOKENS_PER_USER:
            form.add_error(
                None, f"You have {MAX_TOKENS_PER_USER} tokens already: delete one first."
            )
        else:
            days = form.cleaned_data["expires_in_days"]
            expires = timezone.now() + datetime.timedelta(days=days) if days else None
            token, new_key = api_token_create(
                user=_signed_in(request),
                name=form.cleaned_data["name"],
                expires_at=expires,
            )
            tokens.insert(0, token)  # The newest, first as api_tokens_of orders them.
            form = ApiTokenForm()
    context = {
        "form": form,
        "new_key": new_key,
        "tokens": tokens,
        "api_url": request.build_absolute_uri(reverse("search:api_search")),
        "max_tokens": MAX_TOKENS_PER_USER,
    }
    return render(request, "search/api_tokens.html", context, status=400 if form.errors else 200)


@require_POST
def api_token_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke one of the user's own tokens (another user's is a 404)."""
    if not api_token_delete(user=_signed_in(request), token_id=pk):
        raise Http404("No such token.")
    messages.success(request, "Token deleted: it no longer opens the API.")
    return redirect("search:api_tokens")


# -- JSON API ---------------------------------------------------------------


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
    page, log = _run_search(request, form, source="api", page_size=form.cleaned_data["k"])
    return _json(
        {
            "query": page.query,
            "mode": page.mode,
            "search_id": log.pk,
            "total": page.total,
            "page": page.page,
            "k": page.page_size,
            "has_next": page.has_next,
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
