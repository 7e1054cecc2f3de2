"""Rate limits on searches (per user) and logins (per address and per username)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pytest_django.fixtures import Settings as SettingsWrapper

pytestmark = pytest.mark.django_db


@pytest.fixture
def rate_limits(settings: SettingsWrapper) -> Iterator[SettingsWrapper]:
    """Switch rate limiting on (tests run with it off) with fresh counters.

    Limits are per day so that no test straddles the end of a window.
    """
    settings.RATELIMIT_ENABLE = True
    cache.clear()
    yield settings
    cache.clear()


def login_post(client: Client, username: str, password: str = "wrong", **extra: Any) -> int:
    response = client.post(
        "/accounts/login/", {"username": username, "password": password}, **extra
    )
    return response.status_code


class TestRateLimits:
    def test_search_page_and_api_share_a_per_user_budget(
        self, client: Client, user: User, other_user: User, rate_limits: SettingsWrapper
    ) -> None:
        """Over SEARCH_RATE_LIMIT a user gets 429s; another user is unaffected."""
        rate_limits.SEARCH_RATE_LIMIT = "3/d"
        client.force_login(user)
        assert client.get("/search/", {"q": "a"}).status_code == 200
        assert client.get("/api/search", {"q": "a"}).status_code == 200
        assert client.get("/search/", {"q": "a"}).status_code == 200

        page = client.get("/search/", {"q": "a"})
        assert page.status_code == 429
        assert page["Content-Type"].startswith("text/html")
        assert "Too many requests" in page.content.decode()
        api = client.get("/api/search", {"q": "a"})
        assert api.status_code == 429
        assert api.json() == {
            "error": "Too many requests in a short time. Wait a minute and try again."
        }

        other = Client()
        other.force_login(other_user)
        assert other.get("/search/", {"q": "a"}).status_code == 200
        assert other.get("/api/search", {"q": "a"}).status_code == 200

    def test_blank_rate_disables_the_limit(
        self, client: Client, user: User, rate_limits: SettingsWrapper
    ) -> None:
        """SEARCH_RATE_LIMIT="" lets every search through."""
        rate_limits.SEARCH_RATE_LIMIT = ""
        client.force_login(user)
        assert {client.get("/api/search", {"q": "a"}).status_code for _ in range(5)} == {200}

    def test_login_is_limited_per_ip(
        self, client: Client, user: User, rate_limits: SettingsWrapper
    ) -> None:
        """Over LOGIN_RATE_LIMIT an address gets 429s (both login pages count); others don't."""
        rate_limits.LOGIN_RATE_LIMIT = "3/d"
        assert login_post(client, "a") == 200  # The form again, with its error.
        assert login_post(client, "b") == 200
        admin_login = client.post("/admin/login/", {"username": "c", "password": "x"})
        assert admin_login.status_code == 200
        assert login_post(client, "d") == 429
        assert client.post("/admin/login/", {"username": "e"}).status_code == 429
        # Even the right password: the attempt is not looked at.
        assert login_post(client, "staff", "pw-staff-123") == 429
        assert client.get("/accounts/login/").status_code == 200  # GET is free.
        assert login_post(client, "staff", "pw-staff-123", REMOTE_ADDR="10.1.2.3") == 302

    def test_login_is_limited_per_username(
        self, client: Client, user: User, other_user: User, rate_limits: SettingsWrapper
    ) -> None:
        """Over LOGIN_USERNAME_RATE_LIMIT a username is locked from every address."""
        rate_limits.LOGIN_RATE_LIMIT = ""
        rate_limits.LOGIN_USERNAME_RATE_LIMIT = "2/d"
        assert login_post(client, "staff", REMOTE_ADDR="10.0.0.1") == 200
        assert login_post(client, "Staff ", REMOTE_ADDR="10.0.0.2") == 200
        assert login_post(client, "STAFF", "pw-staff-123", REMOTE_ADDR="10.0.0.3") == 429
        assert login_post(client, "outsider", "pw-outsider-123") == 302

    def test_client_address_from_a_proxy_header(
        self, client: Client, rate_limits: SettingsWrapper
    ) -> None:
        """With RATELIMIT_IP_META_KEY, clients behind one proxy are counted apart."""
        rate_limits.LOGIN_RATE_LIMIT = "1/d"
        rate_limits.RATELIMIT_IP_META_KEY = "HTTP_X_REAL_IP"
        assert login_post(client, "a", HTTP_X_REAL_IP="192.0.2.1") == 200
        assert login_post(client, "b", HTTP_X_REAL_IP="192.0.2.1") == 429
        assert login_post(client, "c", HTTP_X_REAL_IP="192.0.2.2") == 200

    def test_limits_are_off_in_tests_by_default(self, client: Client, user: User) -> None:
        """The test settings switch limiting off, so other tests need not care."""
        assert django_settings.RATELIMIT_ENABLE is False
        assert {login_post(client, "staff") for _ in range(12)} == {200}
