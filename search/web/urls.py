"""Search pages, the document page, the API tokens page and the JSON API."""

from __future__ import annotations

from django.urls import path

from search.web import answers, api, views

app_name = "search"
urlpatterns = [
    path("", views.home, name="home"),
    path("search/", views.search_view, name="search"),
    path("documents/<int:pk>/", views.document_view, name="document"),
    path("ask/", answers.ask_view, name="ask"),
    path("ask/stream", answers.ask_stream_view, name="ask_stream"),
    path("account/api-tokens/", views.api_tokens_view, name="api_tokens"),
    path(
        "account/api-tokens/<int:pk>/delete/",
        views.api_token_delete_view,
        name="api_token_delete",
    ),
    path("api/search", api.api_search, name="api_search"),
    path("api/answer", api.api_answer, name="api_answer"),
    path("api/documents/<int:pk>", api.api_document, name="api_document"),
    path("api/documents/<int:pk>/related", api.api_related, name="api_related"),
    path("api/schema", api.api_schema, name="api_schema"),
]
