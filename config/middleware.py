"""Request-wide policies: login required, API tokens, Content-Security-Policy, rate limits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse

if TYPE_CHECKING:
    from collections.abc import Callable

    from django.http import HttpRequest, HttpResponse

    Rate = Callable[[str, HttpRequest], str | None]

_OPEN_PREFIXES = ("/accounts/login/", "/admin/login/", "/static/", "/healthz")


class LoginRequiredMiddleware:
    """Send anonymous requests to the login page (API requests get a 401)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated or request.path.startswith(_OPEN_PREFIXES):
            return self.get_response(request)
        if request.path.startswith("/api/"):
            response = JsonResponse({"error": "authentication required"}, status=401)
            response["WWW-Authenticate"] = 'Bearer realm="api"'
            return response
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)


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
        from search.services import api_token_authenticate

        scheme, _, key = header.partition(" ")
        user = api_token_authenticate(key.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            response = JsonResponse({"error": "invalid, expired or revoked API token"}, status=401)
            response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return response
        request.user = user
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """Send the ``SECURE_CSP`` policy as a Content-Security-Policy header.

    The setting has the shape of Django 6.0's ``SECURE_CSP`` (directive ->
    list of sources), so ``django.middleware.csp.ContentSecurityPolicyMiddleware``
    can replace this class on upgrade. A response that already carries a
    policy keeps it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = getattr(settings, "SECURE_CSP", None) or {}
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = "; ".join(
                " ".join([directive, *sources]) for directive, sources in policy.items()
            )
        return response


def setting_rate(name: str) -> Rate:
    """Return a django-ratelimit ``rate`` read from setting ``name`` per request.

    Reading at request time lets tests change the limit with the ``settings``
    fixture; a blank setting disables the limit (django-ratelimit skips a
    ``None`` rate).
    """

    def rate(group: str, request: HttpRequest) -> str | None:
        return getattr(settings, name, "") or None

    rate.__name__ = rate.__qualname__ = f"rate_from_{name}"
    return rate


def login_username(group: str, request: HttpRequest) -> str:
    """Rate-limit key for login attempts: the username tried, case-folded."""
    return request.POST.get("username", "").strip().casefold()
