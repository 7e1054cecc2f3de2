"""Bearer-token authentication for the JSON API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import JsonResponse

from search.services import api_token_authenticate

if TYPE_CHECKING:
    from collections.abc import Callable

    from django.http import HttpRequest, HttpResponse


class ApiTokenMiddleware:
    """Authenticate ``/api/`` requests that carry ``Authorization: Bearer <key>``.

    The token acts as its user for the API only (pages and the admin still
    want a session). A request with a bad, expired or revoked key gets a 401
    even if it also has a session: a client that sends a key means that key.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        header = request.headers.get("Authorization", "")
        if not request.path.startswith("/api/") or not header:
            return self.get_response(request)
        scheme, _, key = header.partition(" ")
        user = api_token_authenticate(key.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            response = JsonResponse({"error": "invalid, expired or revoked API token"}, status=401)
            response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return response
        request.user = user
        return self.get_response(request)
