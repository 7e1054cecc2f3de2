"""Login is required everywhere: every URL pattern is walked anonymously and as non-staff."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.django_db


#: Pages anyone may open: the two login pages and the load balancer's probe.
OPEN_PATHS: Final = frozenset({"/accounts/login/", "/admin/login/", "/healthz"})


def _sample_path(pattern: Any) -> str:
    """A concrete path matching one URL pattern (1 for every parameter)."""
    text = str(pattern)
    if isinstance(pattern, RoutePattern):
        return re.sub(r"<(?:\w+:)?\w+>", "1", text)
    text = text.removeprefix("^").removesuffix("$").removesuffix(r"\Z")
    # (?P<app_label>auth|documents) -> auth; (?P<url>.*) -> 1
    text = re.sub(r"\(\?P<\w+>(\w+)(?:\|\w+)*\)", r"\1", text)
    return re.sub(r"\(\?P<\w+>[^)]*\)", "1", text)


def _all_paths(patterns: list[Any], prefix: str = "/") -> Iterator[str]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _all_paths(entry.url_patterns, prefix + _sample_path(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + _sample_path(entry.pattern)


ALL_PATHS: Final = sorted(set(_all_paths(get_resolver().url_patterns)))
PROTECTED_PATHS: Final = [path for path in ALL_PATHS if path not in OPEN_PATHS]


class TestLoginRequired:
    def test_every_url_pattern_is_walked(self) -> None:
        """The walk covers the site, the API and the admin, and every path resolves."""
        for path in ALL_PATHS:
            resolve(path)
        assert {"/", "/search/", "/documents/1/", "/api/search", "/api/documents/1"} <= set(
            ALL_PATHS
        )
        assert "/admin/documents/document/1/change/" in ALL_PATHS
        assert len([p for p in ALL_PATHS if p.startswith("/admin/")]) >= 20

    @pytest.mark.parametrize("path", PROTECTED_PATHS)
    def test_anonymous_get_never_gets_content(self, client: Client, path: str) -> None:
        """Anonymous requests are sent to a login page, or get a JSON 401 under /api/.

        The admin's own views (index, app lists, logout) send them to the
        admin's login, every other page to the site's.
        """
        response = client.get(path)
        if path.startswith("/api/"):
            assert response.status_code == 401
            assert response.json() == {"error": "authentication required"}
        else:
            assert response.status_code == 302
            assert response["Location"].startswith(
                ("/accounts/login/?next=", "/admin/login/?next=")
            )

    @pytest.mark.parametrize("path", [p for p in PROTECTED_PATHS if p.startswith("/admin/")])
    def test_admin_is_closed_to_non_staff(self, client: Client, user: User, path: str) -> None:
        """A signed-in user without staff status is sent to the admin login (or gets 404)."""
        client.force_login(user)
        response = client.get(path)
        assert response.status_code in (302, 404)
        if response.status_code == 302:
            # The admin sends a non-staff "logout" to its index, i.e. its login.
            location = response["Location"]
            assert location.startswith("/admin/login/?next=") or location == "/admin/"

    @pytest.mark.parametrize("path", sorted(OPEN_PATHS))
    def test_open_paths(self, client: Client, path: str) -> None:
        """Only the login pages and the health check answer anonymous requests."""
        assert client.get(path).status_code == 200
