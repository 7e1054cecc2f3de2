"""Security headers and the production settings (``check --deploy``, rate settings)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest
from django.conf import settings as django_settings
from django.test import Client

from config.env import ImproperlyConfiguredEnv
from tests.factories import make_document
from tests.security.helpers import ADD_URL, CHANGELIST_URL, change_url

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsWrapper

pytestmark = pytest.mark.django_db

BASE_DIR: Final = Path(__file__).resolve().parents[2]
EXPECTED_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_SCRIPT_TAG: Final = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.IGNORECASE | re.DOTALL)
_EVENT_HANDLER: Final = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE)


def assert_csp_compatible(content: str) -> None:
    """No inline script, event handler or javascript: URL that the CSP would block."""
    for attributes, body in _SCRIPT_TAG.findall(content):
        assert "src=" in attributes or "application/json" in attributes or not body.strip(), (
            f"inline <script{attributes}>"
        )
    assert _EVENT_HANDLER.search(content) is None
    assert "javascript:" not in content.lower()


class TestHeaders:
    def test_pages_send_security_headers(self, admin_client: Client) -> None:
        """Every page sends the CSP, anti-framing, no-sniff and referrer headers."""
        document = make_document("Header check", "Some text for the header check.")
        for path in [
            "/search/?q=header",
            f"/documents/{document.pk}/",
            "/api/search?q=x",
            CHANGELIST_URL,
        ]:
            response = admin_client.get(path)
            assert response.status_code == 200, path
            assert response["Content-Security-Policy"] == EXPECTED_CSP
            assert response["X-Frame-Options"] == "DENY"
            assert response["X-Content-Type-Options"] == "nosniff"
            assert response["Referrer-Policy"] == "same-origin"

    def test_login_page_and_redirects_send_the_policy(self, client: Client) -> None:
        """The CSP wraps responses made by the login middleware too."""
        assert client.get("/accounts/login/")["Content-Security-Policy"] == EXPECTED_CSP
        assert client.get("/search/")["Content-Security-Policy"] == EXPECTED_CSP

    def test_policy_follows_the_setting(self, client: Client, settings: SettingsWrapper) -> None:
        """SECURE_CSP = {} sends no policy."""
        settings.SECURE_CSP = {}
        assert "Content-Security-Policy" not in client.get("/accounts/login/")

    def test_pages_work_under_the_policy(self, admin_client: Client) -> None:
        """Site and admin pages load scripts from files only, so the CSP blocks nothing."""
        document = make_document("Policy check", "Text about the policy check.")
        paths = [
            "/search/",
            "/search/?q=policy",
            f"/documents/{document.pk}/",
            CHANGELIST_URL,
            ADD_URL,
            change_url(document),
            "/admin/",
        ]
        for path in paths:
            response = admin_client.get(path)
            assert response.status_code == 200, path
            assert_csp_compatible(response.content.decode())
        assert_csp_compatible(Client().get("/accounts/login/").content.decode())

    def test_templates_have_no_inline_scripts(self) -> None:
        """Templates keep script in static files (script-src 'self')."""
        for template in (BASE_DIR / "templates").rglob("*.html"):
            content = template.read_text()
            assert_csp_compatible(content)
            assert "hx-on" not in content, template  # htmx would need 'unsafe-eval'.


def deploy_check(**env: str) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py check --deploy`` with production-like settings."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CACHE_URL", "SEARCH_RATE", "LOGIN_RATE"))
    }
    environ |= {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_SECURE": "1",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "search.example.org",
        "DJANGO_DEBUG": "0",
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class TestDeploySettings:
    def test_check_deploy_is_clean(self) -> None:
        """DJANGO_SECURE=1 with a shared cache passes ``check --deploy`` without warnings."""
        result = deploy_check(CACHE_URL="redis://127.0.0.1:6379/1")
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "System check identified no issues" in output
        assert "WARNING" not in output
        assert "ERROR" not in output

    def test_per_process_cache_is_an_error_in_production(self) -> None:
        """Without CACHE_URL, rate limits would count per process: the check says so."""
        result = deploy_check()
        assert result.returncode != 0
        assert "django_ratelimit.E003" in result.stderr + result.stdout

    @pytest.mark.parametrize(
        ("raw", "expected"), [("", ""), ("0", ""), ("30/m", "30/m"), ("5/10m", "5/10m")]
    )
    def test_rate_setting_parser(
        self, monkeypatch: pytest.MonkeyPatch, raw: str, expected: str
    ) -> None:
        """Rates are django-ratelimit's syntax; "" and "0" switch the limit off."""
        from config.settings import _env_rate

        monkeypatch.setenv("SEARCH_RATE_LIMIT", raw)
        assert _env_rate("SEARCH_RATE_LIMIT", "120/m") == expected

    def test_bad_rate_fails_at_start_up(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A malformed rate names the variable."""
        from config.settings import _env_rate

        monkeypatch.setenv("SEARCH_RATE_LIMIT", "lots")
        with pytest.raises(ImproperlyConfiguredEnv, match="SEARCH_RATE_LIMIT='lots'"):
            _env_rate("SEARCH_RATE_LIMIT", "120/m")

    def test_defaults(self) -> None:
        """Search 120/min per user; login 10/min per IP and 5/min per username."""
        assert django_settings.SEARCH_RATE_LIMIT == "120/m"
        assert django_settings.LOGIN_RATE_LIMIT == "10/m"
        assert django_settings.LOGIN_USERNAME_RATE_LIMIT == "5/m"
