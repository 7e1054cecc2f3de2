"""URL configuration, the health check and the project's error pages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.utils.html import format_html
from django_ratelimit.decorators import ratelimit

from config.middleware import login_username, setting_rate

if TYPE_CHECKING:
    from collections.abc import Callable

    from django.http.response import HttpResponseBase

    View = Callable[..., HttpResponseBase]

_ERROR_PAGE: Final = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
    "<title>{} · DocSearch</title></head><body><h1>{}</h1><p>{}</p>"
    '<p><a href="/">Back to search</a></p></body></html>'
)


@login_not_required
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


def _error_response(request: HttpRequest, *, status: int, title: str, message: str) -> HttpResponse:
    """A small self-contained error page, or JSON under /api/."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": message}, status=status)
    return HttpResponse(format_html(_ERROR_PAGE, title, title, message), status=status)


def too_many_requests(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Answer a request over a rate limit (``RATELIMIT_VIEW``) with a 429."""
    return _error_response(
        request,
        status=429,
        title="Too many requests",
        message="Too many requests in a short time. Wait a minute and try again.",
    )


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Explain the request limits a 400 comes from (Django's page says only "Bad Request")."""
    if isinstance(exception, TooManyFilesSent):
        message = (
            f"Too many files in one upload: at most {settings.DATA_UPLOAD_MAX_NUMBER_FILES} "
            "are accepted at a time."
        )
    elif isinstance(exception, TooManyFieldsSent):
        message = "Too many form fields in one request."
    elif isinstance(exception, RequestDataTooBig):
        message = "The request is too large."
    else:
        message = "The request could not be understood."
    return _error_response(request, status=400, title="Bad request", message=message)


def _login_limits(view: View) -> View:
    """Limit login POSTs per client IP and per username tried.

    Both login pages (the site's and the admin's) share the same counters.
    """
    per_username = ratelimit(
        group="login:username",
        key=login_username,
        rate=setting_rate("LOGIN_USERNAME_RATE_LIMIT"),
        method="POST",
    )
    per_ip = ratelimit(
        group="login:ip", key="ip", rate=setting_rate("LOGIN_RATE_LIMIT"), method="POST"
    )
    return login_not_required(per_ip(per_username(view)))


handler400 = bad_request

urlpatterns = [
    # Before admin.site.urls, so that the admin's login is limited as well.
    path("admin/login/", _login_limits(admin.site.login)),
    path("admin/", admin.site.urls),
    path("accounts/login/", _login_limits(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", healthz),
    path("", include("search.web.urls")),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
