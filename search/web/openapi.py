"""The OpenAPI 3.1 description of the JSON API, served at ``GET /api/schema``.

The query parameters of ``/api/search`` are derived from ``SearchForm``, so a
field added to the form appears in the schema; a field of a kind this module
does not know raises ``TypeError`` (and the tests fail) rather than being
described wrongly. The response schemas are written out by hand and mirror
the dictionaries built in ``search.web.views``; ``tests/search/test_openapi.py``
validates real responses against them (``additionalProperties: false``), so
a key added to a response without a schema change fails the tests.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, cast

from django import forms
from django.conf import settings
from django.forms.utils import pretty_name

from documents.models import Document
from search import related
from search.ranking.backends import SearchMode
from search.related import RelatedMethod
from search.web.forms import MAX_TAGS, TAG_MAX_LENGTH, SearchForm, SwitchField, TagsField

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["OPENAPI_VERSION", "openapi_schema"]

OPENAPI_VERSION: Final = "3.1.0"
API_VERSION: Final = "1.0.0"

_JSON: Final = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(type_: str) -> dict[str, Any]:
    return {"type": [type_, "null"]}


def _object(properties: dict[str, Any], *, description: str = "") -> dict[str, Any]:
    """A closed object whose every property is present in each response."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def _choices(field: forms.ChoiceField) -> list[tuple[Any, Any]]:
    """The field's normalised ``(value, label)`` pairs (Django lists them by now)."""
    return list(cast("Iterable[tuple[Any, Any]]", field.choices))


def _choice_values(field: forms.ChoiceField) -> list[str]:
    """The values a choice field accepts (labels and a blank choice left out)."""
    values: list[str] = []
    for value, label in _choices(field):
        if isinstance(label, list | tuple):  # An option group.
            values.extend(str(v) for v, _ in label if str(v))
        elif str(value):
            values.append(str(value))
    return values


def _choice_labels(field: forms.ChoiceField) -> str:
    """``value (label), ...`` where the labels say more than the values."""
    pairs = [(str(value), str(label)) for value, label in _choices(field) if str(value)]
    if all(label.casefold() == value.casefold() for value, label in pairs):
        return ""
    return ", ".join(f"{value} ({label})" for value, label in pairs)


def _field_schema(name: str, field: forms.Field) -> tuple[dict[str, Any], bool]:
    """The JSON schema of one form field's value, and whether it is repeated."""
    # Subclasses before their bases: ModelMultipleChoiceField < ModelChoiceField
    # < ChoiceField, MultipleChoiceField < ChoiceField, FloatField and
    # DecimalField < IntegerField.
    if isinstance(field, TagsField):
        item = {"type": "string", "maxLength": TAG_MAX_LENGTH}
        return {"type": "array", "items": item, "maxItems": MAX_TAGS}, True
    if isinstance(field, forms.ModelMultipleChoiceField):
        return {"type": "array", "items": {"type": "string"}}, True
    if isinstance(field, forms.ModelChoiceField):
        return {"type": "string"}, False
    if isinstance(field, forms.MultipleChoiceField):
        return {"type": "array", "items": {"type": "string", "enum": _choice_values(field)}}, True
    if isinstance(field, forms.ChoiceField):
        schema: dict[str, Any] = {"type": "string", "enum": _choice_values(field)}
        empty_value = getattr(field, "empty_value", "")
        if empty_value not in ("", None):
            schema["default"] = str(empty_value)
        return schema, False
    if isinstance(field, forms.DateTimeField):
        return {"type": "string", "format": "date-time"}, False
    if isinstance(field, forms.DateField):
        return {"type": "string", "format": "date"}, False
    if isinstance(field, forms.FloatField | forms.DecimalField):
        schema = {"type": "number"}
    elif isinstance(field, forms.IntegerField):
        schema = {"type": "integer"}
    elif isinstance(field, forms.BooleanField):
        return {"type": "boolean"}, False
    elif isinstance(field, SwitchField):
        return {"type": "string", "enum": ["1", "0", "true", "false", "on", "off"]}, False
    elif isinstance(field, forms.CharField):
        schema = {"type": "string"}
        if field.min_length is not None:
            schema["minLength"] = field.min_length
        if field.max_length is not None:
            schema["maxLength"] = field.max_length
        return schema, False
    else:
        raise TypeError(
            f"SearchForm.{name} is a {type(field).__name__}, which search/openapi.py "
            "cannot describe yet; add it to _field_schema()."
        )
    for keyword, bound in (("minimum", field.min_value), ("maximum", field.max_value)):
        value = bound() if callable(bound) else bound
        if value is not None:  # A Decimal bound would be dumped as a string.
            schema[keyword] = float(value) if isinstance(value, Decimal) else value
    return schema, False


def _search_parameters() -> list[dict[str, Any]]:
    """``/api/search``'s query parameters: one per ``SearchForm`` field."""
    # What the view and the form add to a field's own definition.
    extra: dict[str, dict[str, Any]] = {
        # The form lets the page render without a query; the API answers 400.
        "q": {"required": True, "note": "A blank query is a 400."},
        "tag": {"note": "Repeat the parameter or separate tags with commas."},
        "page": {"default": 1},
        "k": {"default": settings.SEARCH_RESULTS_PER_PAGE, "description": "Results per page"},
        "rerank": {
            "note": "Re-order the top RERANK_CANDIDATES results with the cross-encoder "
            "configured by RERANK_MODEL; absent means RERANK_DEFAULT. Without a "
            "cross-encoder the order is kept and a note says so."
        },
    }
    parameters = []
    for name, field in SearchForm.base_fields.items():
        schema, repeated = _field_schema(name, field)
        more = extra.get(name, {})
        if "default" in more:
            schema["default"] = more["default"]
        description = str(
            field.help_text or field.label or more.get("description") or pretty_name(name)
        )
        if isinstance(field, forms.ModelChoiceField):
            if field.to_field_name:
                description += f" (the {field.to_field_name})"
        elif isinstance(field, forms.ChoiceField) and (labels := _choice_labels(field)):
            description += f": {labels}"
        if note := more.get("note"):
            description += f". {note}"
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": bool(more.get("required", field.required)),
            "description": description,
            "schema": schema,
        }
        if repeated:
            parameter.update(style="form", explode=True)
        parameters.append(parameter)
    return parameters


def _error(description: str, **headers: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {_JSON: {"schema": _ref("Error")}},
    }
    if headers:
        response["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return response


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _response(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _document_id() -> dict[str, Any]:
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The document's id.",
        "schema": {"type": "integer", "minimum": 0},
    }


def _components() -> dict[str, Any]:
    date_time = {"type": "string", "format": "date-time"}
    url = {"type": "string", "format": "uri", "description": "The document's page."}
    tags = {"type": "array", "items": {"type": "string"}}
    source_type = {"type": "string", "enum": list(Document.SourceType.values)}
    language = {"type": "string", "enum": list(Document.Language.values)}
    schemas = {
        "SearchResponse": _object(
            {
                "query": {"type": "string", "description": "The query as searched."},
                "mode": {"type": "string", "enum": [mode.value for mode in SearchMode]},
                "search_id": {
                    "type": "integer",
                    "description": "The id of the logged search.",
                },
                "total": {"type": "integer", "minimum": 0},
                "page": {"type": "integer", "minimum": 1},
                "k": {"type": "integer", "minimum": 1, "description": "Results per page."},
                "has_next": {"type": "boolean"},
                "reranked": {
                    "type": "boolean",
                    "description": "Whether the cross-encoder re-ordered the top results.",
                },
                "timings_ms": {
                    "type": "object",
                    "description": "Milliseconds spent, by stage (e.g. keyword_ms, total_ms).",
                    "additionalProperties": {"type": "number"},
                },
                "results": {"type": "array", "items": _ref("SearchResult")},
                "suggestions": {
                    "type": "array",
                    "items": _ref("Suggestion"),
                    "description": "Titles spelled like the query, offered when nothing matched.",
                },
                "notes": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Remarks on how the query was handled.",
                },
            }
        ),
        "SearchResult": _object(
            {
                "id": {"type": "integer"},
                "title": {"type": "string"},
                "url": url,
                "score": {"type": "number"},
                "rank": {"type": "integer", "minimum": 1},
                "keyword_rank": _nullable("integer"),
                "keyword_score": _nullable("number"),
                "semantic_rank": _nullable("integer"),
                "semantic_score": _nullable("number"),
                "rerank_rank": _nullable("integer"),
                "rerank_score": _nullable("number"),
                "snippet": {
                    "type": "string",
                    "description": "Escaped HTML with the matches in <mark> elements.",
                },
                "snippet_text": {"type": "string", "description": "The snippet as plain text."},
                "more_matches": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Further matching passages beyond the snippet.",
                },
                "tags": tags,
                "source_type": source_type,
                "language": language,
                "updated_at": date_time,
            }
        ),
        "Suggestion": _object(
            {
                "id": {"type": "integer"},
                "title": {"type": "string"},
                "similarity": {"type": "number"},
                "url": url,
            }
        ),
        "Document": _object(
            {
                "id": {"type": "integer"},
                "title": {"type": "string"},
                "url": url,
                "text": {"type": "string"},
                "tags": tags,
                "source_type": source_type,
                "language": language,
                "owner": {**_nullable("string"), "description": "The owner's username."},
                "groups": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Groups the document is shared with.",
                },
                "status": {"type": "string", "enum": list(Document.Status.values)},
                "last_error": {"type": "string"},
                "embedding_model": {"type": "string"},
                "created_at": date_time,
                "updated_at": date_time,
            }
        ),
        "Citation": _object(
            {
                "number": {"type": "integer", "description": "As cited in the answer: [1]."},
                "document_id": {"type": "integer"},
                "chunk_id": {"type": "integer"},
                "title": {"type": "string"},
                "passage": {"type": "string", "description": "The cited passage, whole."},
                "highlight": {
                    "type": ["array", "null"],
                    "items": {"type": "integer"},
                    "minItems": 2,
                    "maxItems": 2,
                    "description": "The answer's [start, end) in the passage, if taken from it.",
                },
                "url": {
                    "type": "string",
                    "format": "uri",
                    "description": "The document page, scrolled to the passage.",
                },
            }
        ),
        "AnswerResponse": _object(
            {
                "question": {"type": "string"},
                "language": {"type": "string", "enum": ["ko", "en", "mixed"]},
                "kind": {
                    "type": "string",
                    "enum": ["extractive", "generated", "none"],
                    "description": "A sentence of the documents, an answer written by the "
                    "language model (LLM_MODEL) from the cited passages, or none found.",
                },
                "answer": {"type": "string"},
                "notes": {"type": "array", "items": {"type": "string"}},
                "latency_ms": {"type": "number"},
                "citations": {"type": "array", "items": _ref("Citation")},
            }
        ),
        "RelatedResponse": _object(
            {
                "id": {"type": "integer", "description": "The source document."},
                "indexed": {
                    "type": "boolean",
                    "description": "Whether the source has an embedding (if not, no results).",
                },
                "results": {"type": "array", "items": _ref("RelatedResult")},
            }
        ),
        "RelatedResult": _object(
            {
                "document_id": {"type": "integer"},
                "title": {"type": "string"},
                "score": {"type": "number", "description": "Cosine similarity."},
                "possible_duplicate": {"type": "boolean"},
                "source_passage": {"type": "string"},
                "related_passage": {"type": "string"},
                "method": {"type": "string", "enum": [method.value for method in RelatedMethod]},
                "url": url,
            }
        ),
        "Error": {
            "type": "object",
            "properties": {
                "error": {"type": "string"},
                "fields": {
                    "type": "object",
                    "description": "Messages by parameter, for invalid parameters.",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["error"],
            "additionalProperties": False,
        },
    }
    return {
        "schemas": schemas,
        "responses": {
            "Unauthorized": _error(
                "No session and no token, or a bad, expired or revoked token.",
                **{"WWW-Authenticate": 'Bearer realm="api" or Bearer error="invalid_token"'},
            ),
            "MethodNotAllowed": _error(
                "Only GET (and HEAD) are allowed.", Allow="The methods allowed: GET, HEAD."
            ),
            "NotFound": _error("No such document, or one the caller may not see."),
        },
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": (
                    "An API token (dsk_...), made with `python manage.py create_api_token "
                    "<username>` or in the admin. It acts as its user, for /api/ only."
                ),
            },
            "sessionAuth": {
                "type": "apiKey",
                "in": "cookie",
                "name": settings.SESSION_COOKIE_NAME,
                "description": "The session cookie of a user logged in through the site.",
            },
        },
    }


def openapi_schema(*, server_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the JSON API, served from ``server_url``."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "DocSearch API",
            "version": API_VERSION,
            "description": (
                "Search the documents the caller may see (keyword, semantic or hybrid), "
                "read one document and find related ones. Every call needs a session "
                "or an API token."
            ),
        },
        "servers": [{"url": server_url.rstrip("/") or "/"}],
        "security": [{"bearerAuth": []}, {"sessionAuth": []}],
        "paths": {
            "/api/search": {
                "get": {
                    "operationId": "search",
                    "summary": "Search the documents the caller may see.",
                    "description": "Each search is logged (its id is `search_id`).",
                    "parameters": _search_parameters(),
                    "responses": {
                        "200": _ok("A page of results.", _ref("SearchResponse")),
                        "400": _error("Invalid parameters (see `fields`) or a blank query."),
                        "401": _response("Unauthorized"),
                        "405": _response("MethodNotAllowed"),
                        "429": _error("Over the search rate limit (SEARCH_RATE_LIMIT)."),
                    },
                }
            },
            "/api/answer": {
                "get": {
                    "operationId": "answer",
                    "summary": "Answer a question from the documents the caller may see.",
                    "description": "Each answer is logged with its citations.",
                    "parameters": [
                        {
                            "name": "q",
                            "in": "query",
                            "required": True,
                            "description": "The question (at most 1,000 characters are read).",
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _ok("The answer and its citations.", _ref("AnswerResponse")),
                        "400": _error("No question given."),
                        "401": _response("Unauthorized"),
                        "405": _response("MethodNotAllowed"),
                        "429": _error("Over the search rate limit (SEARCH_RATE_LIMIT)."),
                    },
                }
            },
            "/api/documents/{id}": {
                "get": {
                    "operationId": "getDocument",
                    "summary": "One document, with its text and metadata.",
                    "parameters": [_document_id()],
                    "responses": {
                        "200": _ok("The document.", _ref("Document")),
                        "401": _response("Unauthorized"),
                        "404": _response("NotFound"),
                        "405": _response("MethodNotAllowed"),
                    },
                }
            },
            "/api/documents/{id}/related": {
                "get": {
                    "operationId": "getRelatedDocuments",
                    "summary": "The documents most like one document, with matching passages.",
                    "parameters": [
                        _document_id(),
                        {
                            "name": "k",
                            "in": "query",
                            "required": False,
                            "description": "How many related documents to return.",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": related.MAX_K,
                                "default": related.DEFAULT_K,
                            },
                        },
                    ],
                    "responses": {
                        "200": _ok("The related documents.", _ref("RelatedResponse")),
                        "400": _error(f"k is not a whole number from 1 to {related.MAX_K}."),
                        "401": _response("Unauthorized"),
                        "404": _response("NotFound"),
                        "405": _response("MethodNotAllowed"),
                    },
                }
            },
            "/api/schema": {
                "get": {
                    "operationId": "getSchema",
                    "summary": "This OpenAPI document.",
                    "responses": {
                        "200": _ok("The OpenAPI 3.1 document.", {"type": "object"}),
                        "401": _response("Unauthorized"),
                        "405": _response("MethodNotAllowed"),
                    },
                }
            },
        },
        "components": _components(),
    }
