"""Search pages, the document page and the API tokens page: bind a form, call a selector, render."""

from __future__ import annotations

import datetime
import re
from typing import TYPE_CHECKING, Any, cast

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from documents.selectors import document_chunks, document_detail
from search import related
from search.ranking.backends import SearchMode
from search.ranking.selectors import search_documents
from search.related import related_documents
from search.selectors import api_tokens_of
from search.services import (
    MAX_TOKENS_PER_USER,
    api_token_create,
    api_token_delete,
    search_click_create,
    search_log_create,
)
from search.web.answers import search_card
from search.web.forms import ApiTokenForm, ResultClickForm, SearchForm
from search.web.limits import search_rate_limit

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.http import HttpRequest, QueryDict

    from documents.models import Document
    from search.models import SearchQueryLog
    from search.ranking.selectors import SearchPage


def home(request: HttpRequest) -> HttpResponse:
    return redirect("search:search")


def run_search(
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
        rerank=data["rerank"],
    )
    logged_filters: dict[str, object] = filters.as_dict()
    if data["sort"] != "relevance":
        logged_filters["sort"] = data["sort"]
    if page.page > 1:
        logged_filters["page"] = page.page
    if page.reranked:
        logged_filters["rerank"] = True
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
        context["page"], context["search_log"] = run_search(request, form, source="web")
        page = context["page"]
        if page.page == 1:
            hybrid_order = (
                page.mode is SearchMode.HYBRID and form.cleaned_data["sort"] == "relevance"
            )
            context["answer_card"] = search_card(
                request,
                form.cleaned_data["q"],
                filters=form.to_filters(),
                hits=[item.hit for item in page.items] if hybrid_order else None,
            )
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
        "text_parts": cited_passage(document, request.GET),
        "chunks": document_chunks(document),
        "related": related_documents(user=request.user, document=document, k=related.DEFAULT_K),
    }
    return render(request, "search/document.html", context)


def cited_passage(document: Document, params: QueryDict) -> tuple[str, ...] | None:
    """The document's text cut around a cited passage (``?passage=<chunk>&hl=<s>-<e>``).

    (before, passage before the answer, the answer, passage after, after),
    all plain text for the template to escape; None without a valid passage
    of this document's live index.
    """
    raw = params.get("passage", "")
    if not raw.isdigit():
        return None
    chunk = document_chunks(document).filter(pk=int(raw)).first()
    if chunk is None:
        return None
    start, end = chunk.start_offset, chunk.end_offset
    low, high = 0, end - start
    if match := re.fullmatch(r"(\d+)-(\d+)", params.get("hl", "")):
        low, high = sorted((min(int(match[1]), end - start), min(int(match[2]), end - start)))
    text = document.text
    return (
        text[:start],
        text[start : start + low],
        text[start + low : start + high],
        text[start + high : end],
        text[end:],
    )


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
