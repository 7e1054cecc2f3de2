"""Request-wide policies: login required, Content-Security-Policy, rate limits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.http import JsonResponse

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from django.http import HttpRequest, HttpResponse

    Rate = Callable[[str, HttpRequest], str | None]


class LoginRequiredMiddleware(auth_middleware.LoginRequiredMiddleware):
    """Django's login-required policy, with a 401 for the JSON API.

    Views open to anonymous users say so with ``login_not_required`` (the
    login pages, the health check); static files never reach it (WhiteNoise
    answers them first). An anonymous API request gets a JSON 401 instead of
    a redirect to the login page.
    """

    def handle_no_permission(self, request: HttpRequest, view_func: Callable[..., Any]) -> Any:
        if request.path.startswith("/api/"):
            response = JsonResponse({"error": "authentication required"}, status=401)
            response["WWW-Authenticate"] = 'Bearer realm="api"'
            return response
        return super().handle_no_permission(request, view_func)


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
