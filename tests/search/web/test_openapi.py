"""The OpenAPI schema of the JSON API: valid, derived from the form, true to real responses."""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

import pytest
from django import forms
from django.core.cache import cache
from django.test import Client
from django.urls import URLPattern, reverse
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from search.ranking.backends import SearchMode
from search.related import MAX_K as RELATED_MAX
from search.related import RelatedDocument
from search.services import api_token_create
from search.web import urls as search_urls
from search.web.forms import MAX_K, MAX_PAGE, SearchForm
from search.web.openapi import openapi_schema
from tests.factories import make_document

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse
    from pytest_django.fixtures import Settings as SettingsWrapper

    from documents.models import Document

pytestmark = pytest.mark.django_db

SERVER = "http://testserver/"
SPEC_URI = "urn:docsearch:openapi"
MODES = [mode.value for mode in SearchMode]


@pytest.fixture
def spec() -> dict[str, Any]:
    return openapi_schema(server_url=SERVER)


@pytest.fixture
def vacation(user: User) -> Document:
    return make_document(
        "Vacation policy",
        "Employees receive twenty vacation days per year. Unused vacation expires.",
        tags=["hr", "policy"],
        owner=user,
    )


@pytest.fixture
def leave() -> Document:
    return make_document(
        "Parental leave",
        "Parents receive paid leave and may add vacation days to it.",
        source_type="md",
    )


def search_parameters(spec: dict[str, Any]) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = spec["paths"]["/api/search"]["get"]["parameters"]
    return parameters


def documented_component(spec: dict[str, Any], path: str, status: int) -> str:
    """The component schema documented for the body of GET ``path`` answering ``status``.

    A ``KeyError`` here means the status is not documented for that path.
    """
    response = spec["paths"][path]["get"]["responses"][str(status)]
    if ref := response.get("$ref"):
        response = spec["components"]["responses"][ref.removeprefix("#/components/responses/")]
    schema_ref: str = response["content"]["application/json"]["schema"]["$ref"]
    return schema_ref.removeprefix("#/components/schemas/")


def schema_errors(spec: dict[str, Any], component: str, body: Any) -> list[str]:
    """What is wrong with ``body`` as a ``component`` (``$ref`` resolved in the spec)."""
    resource = Resource.from_contents(spec, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    validator = Draft202012Validator(
        {"$ref": f"{SPEC_URI}#/components/schemas/{component}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<body>'}: {error.message}"
        for error in validator.iter_errors(body)
    ]


def assert_documented(spec: dict[str, Any], path: str, response: TestResponse) -> dict[str, Any]:
    """The response's status is documented for ``path`` and its JSON body fits the schema."""
    assert response["Content-Type"].startswith("application/json")
    component = documented_component(spec, path, response.status_code)
    body: dict[str, Any] = response.json()
    assert schema_errors(spec, component, body) == []
    return body


class TestSchemaDocument:
    def test_is_a_valid_openapi_31_document(self, spec: dict[str, Any]) -> None:
        """The schema passes the OpenAPI 3.1 validator, servers and all."""
        validate(spec, cls=OpenAPIV31SpecValidator)
        assert spec["openapi"] == "3.1.0"
        assert spec["servers"] == [{"url": "http://testserver"}]

    def test_documents_every_api_route(self, spec: dict[str, Any]) -> None:
        """Each /api/ route of search/urls.py has a GET in the schema, and no other path is listed."""
        routes = {
            "/" + re.sub(r"<int:pk>", "{id}", str(pattern.pattern))
            for pattern in search_urls.urlpatterns
            if isinstance(pattern, URLPattern) and str(pattern.pattern).startswith("api/")
        }
        assert set(spec["paths"]) == routes
        assert {method for item in spec["paths"].values() for method in item} == {"get"}

    def test_every_operation_needs_a_session_or_a_token(self, spec: dict[str, Any]) -> None:
        """Both ways in are declared, applied globally, and each operation documents 401 and 405."""
        schemes = spec["components"]["securitySchemes"]
        assert schemes["bearerAuth"]["type"] == "http"
        assert schemes["bearerAuth"]["scheme"] == "bearer"
        assert "create_api_token" in schemes["bearerAuth"]["description"]
        session = schemes["sessionAuth"]
        assert (session["type"], session["in"], session["name"]) == (
            "apiKey",
            "cookie",
            "sessionid",
        )
        assert spec["security"] == [{"bearerAuth": []}, {"sessionAuth": []}]
        for path, item in spec["paths"].items():
            assert {"401", "405"} <= set(item["get"]["responses"]), path
        assert "429" in spec["paths"]["/api/search"]["get"]["responses"]

    def test_response_objects_are_closed_and_complete(self, spec: dict[str, Any]) -> None:
        """Every response object lists all its keys as required and allows no others."""
        for name, schema in spec["components"]["schemas"].items():
            assert schema["additionalProperties"] is False, name
            if name != "Error":  # "fields" comes only with invalid parameters.
                assert schema["required"] == list(schema["properties"]), name

    def test_related_result_mirrors_the_related_document_dataclass(
        self, spec: dict[str, Any]
    ) -> None:
        """RelatedResult is asdict(RelatedDocument) plus the url the view adds."""
        fields = [field.name for field in dataclasses.fields(RelatedDocument)]
        assert list(spec["components"]["schemas"]["RelatedResult"]["properties"]) == [
            *fields,
            "url",
        ]


class TestSearchParameters:
    def test_one_parameter_per_form_field(self, spec: dict[str, Any]) -> None:
        """The /api/search parameters are exactly SearchForm's fields, in the form's order."""
        names = [parameter["name"] for parameter in search_parameters(spec)]
        assert names == list(SearchForm().fields)
        assert {parameter["in"] for parameter in search_parameters(spec)} == {"query"}

    def test_parameters_carry_the_forms_constraints(self, spec: dict[str, Any]) -> None:
        """Choices become enums, integer bounds minimum/maximum, multi-valued fields arrays."""
        by_name = {parameter["name"]: parameter for parameter in search_parameters(spec)}
        assert by_name["q"]["required"] is True
        assert [name for name, p in by_name.items() if p["required"]] == ["q"]
        assert by_name["mode"]["schema"] == {"type": "string", "enum": MODES, "default": "hybrid"}
        assert by_name["sort"]["schema"]["enum"] == ["relevance", "date"]
        assert by_name["k"]["schema"] | {"default": None} == {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_K,
            "default": None,
        }
        assert (by_name["page"]["schema"]["minimum"], by_name["page"]["schema"]["maximum"]) == (
            1,
            MAX_PAGE,
        )
        for name in ("tag", "source_type", "language"):
            assert by_name[name]["schema"]["type"] == "array", name
            assert (by_name[name]["style"], by_name[name]["explode"]) == ("form", True), name
        assert "commas" in by_name["tag"]["description"]
        assert "pdf" in by_name["source_type"]["schema"]["items"]["enum"]
        for name in ("date_from", "date_to"):
            assert by_name[name]["schema"] == {"type": "string", "format": "date"}, name

    def test_a_new_form_field_becomes_a_parameter(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Adding a field to SearchForm adds it to the schema, described from the field."""
        monkeypatch.setitem(
            SearchForm.base_fields,
            "min_score",
            forms.FloatField(required=False, min_value=0, help_text="Lowest score shown."),
        )
        parameters = search_parameters(openapi_schema(server_url=SERVER))
        assert parameters[-1] == {
            "name": "min_score",
            "in": "query",
            "required": False,
            "description": "Lowest score shown.",
            "schema": {"type": "number", "minimum": 0},
        }

    def test_a_field_it_cannot_describe_is_an_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An unknown kind of field fails loudly instead of being described wrongly."""
        monkeypatch.setitem(SearchForm.base_fields, "upload", forms.FileField(required=False))
        with pytest.raises(TypeError, match=r"SearchForm\.upload"):
            openapi_schema(server_url=SERVER)


class TestResponsesMatchTheSchema:
    @pytest.mark.parametrize("mode", MODES)
    def test_search_results(
        self,
        logged_in: Client,
        spec: dict[str, Any],
        vacation: Document,
        leave: Document,
        mode: str,
    ) -> None:
        """A search with results, in every mode, is a SearchResponse of SearchResults."""
        response = logged_in.get("/api/search", {"q": "vacation days", "mode": mode})
        assert response.status_code == 200
        body = assert_documented(spec, "/api/search", response)
        assert body["mode"] == mode
        assert {result["id"] for result in body["results"]} == {vacation.pk, leave.pk}

    def test_search_with_filters_and_suggestions(
        self, logged_in: Client, spec: dict[str, Any], vacation: Document
    ) -> None:
        """Repeated and comma-separated tags are accepted; an empty result carries suggestions."""
        queries: list[dict[str, Any]] = [
            {"q": "vacation", "tag": ["hr", "policy"], "mode": "keyword"},
            {"q": "vacation", "tag": "hr,policy", "k": 1, "sort": "date"},
        ]
        for params in queries:
            response = logged_in.get("/api/search", params)
            body = assert_documented(spec, "/api/search", response)
            assert [result["id"] for result in body["results"]] == [vacation.pk]
        response = logged_in.get("/api/search", {"q": "vacaton", "mode": "keyword"})
        body = assert_documented(spec, "/api/search", response)
        assert body["results"] == []
        assert [s["id"] for s in body["suggestions"]] == [vacation.pk]

    def test_document(
        self, logged_in: Client, spec: dict[str, Any], vacation: Document, leave: Document
    ) -> None:
        """A document, with an owner and without, is a Document."""
        for document, owner in ((vacation, "staff"), (leave, None)):
            response = logged_in.get(reverse("search:api_document", args=[document.pk]))
            assert response.status_code == 200
            body = assert_documented(spec, "/api/documents/{id}", response)
            assert (body["id"], body["owner"]) == (document.pk, owner)

    def test_related(
        self, logged_in: Client, spec: dict[str, Any], vacation: Document, leave: Document
    ) -> None:
        """Related documents are a RelatedResponse of RelatedResults."""
        response = logged_in.get(reverse("search:api_related", args=[vacation.pk]), {"k": 3})
        assert response.status_code == 200
        body = assert_documented(spec, "/api/documents/{id}/related", response)
        assert body["indexed"] is True
        assert [result["document_id"] for result in body["results"]] == [leave.pk]

    @pytest.mark.parametrize(
        ("path", "params"),
        [
            ("/api/search", {"q": "vacation", "k": 0}),
            ("/api/search", {"q": "vacation", "mode": "bogus", "date_from": "soon"}),
            ("/api/search", {"q": " "}),
            ("/api/documents/{id}/related", {"k": RELATED_MAX + 1}),
        ],
    )
    def test_bad_parameters_are_400(
        self,
        logged_in: Client,
        spec: dict[str, Any],
        vacation: Document,
        path: str,
        params: dict[str, Any],
    ) -> None:
        """Invalid parameters get a documented 400 with an Error body."""
        response = logged_in.get(path.format(id=vacation.pk), params)
        assert response.status_code == 400
        assert_documented(spec, path, response)

    @pytest.mark.parametrize("path", ["/api/documents/{id}", "/api/documents/{id}/related"])
    def test_missing_document_is_404(
        self, logged_in: Client, spec: dict[str, Any], path: str
    ) -> None:
        """A document that does not exist gets a documented 404 with an Error body."""
        response = logged_in.get(path.format(id=999999))
        assert response.status_code == 404
        assert_documented(spec, path, response)

    @pytest.mark.parametrize(
        "path",
        ["/api/search", "/api/documents/{id}", "/api/documents/{id}/related", "/api/schema"],
    )
    def test_anonymous_is_401_and_post_is_405(
        self, client: Client, user: User, spec: dict[str, Any], path: str
    ) -> None:
        """Anonymous calls get 401, a bad token 401, a logged-in POST 405: all Error bodies."""
        url = path.format(id=1)
        anonymous = client.get(url, {"q": "vacation"})
        assert anonymous.status_code == 401
        assert_documented(spec, path, anonymous)
        bad_token = client.get(url, HTTP_AUTHORIZATION="Bearer dsk_nope")
        assert bad_token.status_code == 401
        assert_documented(spec, path, bad_token)
        client.force_login(user)
        post = client.post(url, {"q": "vacation"})
        assert post.status_code == 405
        assert post["Allow"] == "GET, HEAD"
        assert_documented(spec, path, post)

    def test_rate_limited_search_is_429(
        self, logged_in: Client, spec: dict[str, Any], settings: SettingsWrapper
    ) -> None:
        """Over SEARCH_RATE_LIMIT the API answers a documented 429 with an Error body."""
        settings.RATELIMIT_ENABLE = True
        settings.SEARCH_RATE_LIMIT = "1/d"
        cache.clear()
        try:
            assert logged_in.get("/api/search", {"q": "a"}).status_code == 200
            response = logged_in.get("/api/search", {"q": "a"})
        finally:
            cache.clear()
        assert response.status_code == 429
        assert_documented(spec, "/api/search", response)

    def test_a_key_the_schema_does_not_know_fails(
        self, logged_in: Client, spec: dict[str, Any], vacation: Document
    ) -> None:
        """The check is strict: an extra or a missing key, or a wrong type, is reported."""
        body = logged_in.get("/api/search", {"q": "vacation"}).json()
        assert schema_errors(spec, "SearchResponse", body) == []
        result = body["results"][0]
        extra = {**body, "results": [{**result, "language_name": "English"}]}
        assert schema_errors(spec, "SearchResponse", extra) != []
        missing = {key: value for key, value in body.items() if key != "notes"}
        assert schema_errors(spec, "SearchResponse", missing) != []
        wrong = {**body, "results": [{**result, "keyword_rank": "first"}]}
        assert schema_errors(spec, "SearchResponse", wrong) != []


class TestSchemaEndpoint:
    def test_anonymous_gets_401(self, client: Client) -> None:
        """The schema is behind login like the rest of /api/."""
        response = client.get(reverse("search:api_schema"))
        assert response.status_code == 401
        assert response.json() == {"error": "authentication required"}

    def test_logged_in_gets_the_schema(self, logged_in: Client) -> None:
        """A logged-in user gets the schema as JSON, with this server's URL."""
        response = logged_in.get("/api/schema")
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        assert response.json() == openapi_schema(server_url=SERVER)
        validate(response.json(), cls=OpenAPIV31SpecValidator)

    def test_a_token_gets_the_schema(self, client: Client, user: User) -> None:
        """An API token opens the schema too."""
        _, key = api_token_create(user=user, name="generator")
        response = client.get("/api/schema", HTTP_AUTHORIZATION=f"Bearer {key}")
        assert response.status_code == 200
        assert response.json()["openapi"] == "3.1.0"
