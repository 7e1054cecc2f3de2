"""Security: login everywhere, CSRF, headers, deploy settings, rate limits, leaks and XSS."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern

from config.env import ImproperlyConfiguredEnv
from documents.models import Document
from documents.services import document_ingest_bytes, documents_embed
from search.ranking.backends import SearchMode
from tests.factories import make_document

if TYPE_CHECKING:
    from collections.abc import Iterator

    from django.contrib.auth.models import Group
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse
    from pytest_django.fixtures import Settings as SettingsWrapper

pytestmark = pytest.mark.django_db

BASE_DIR: Final = Path(__file__).resolve().parent.parent
MODES: Final = [mode.value for mode in SearchMode]
ADD_URL: Final = "/admin/documents/document/add/"
CHANGELIST_URL: Final = "/admin/documents/document/"
INLINE_MANAGEMENT: Final = {
    "chunks-TOTAL_FORMS": "0",
    "chunks-INITIAL_FORMS": "0",
    "chunks-MIN_NUM_FORMS": "0",
    "chunks-MAX_NUM_FORMS": "1000",
}


def change_url(document: Document) -> str:
    return f"/admin/documents/document/{document.pk}/change/"


# -- 1. Login is required everywhere ------------------------------------------

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


# -- 2. CSRF ------------------------------------------------------------------


@pytest.fixture
def csrf_client() -> Client:
    return Client(enforce_csrf_checks=True)


def csrf_token(client: Client, path: str) -> str:
    """GET a form page and return the CSRF token it sets."""
    response = client.get(path)
    assert response.status_code == 200
    return str(client.cookies["csrftoken"].value)


class TestCsrf:
    @pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
    def test_login_without_token_is_refused(
        self, csrf_client: Client, admin_user: User, path: str
    ) -> None:
        """A login POST without a CSRF token is a 403 and logs nobody in."""
        response = csrf_client.post(path, {"username": "boss", "password": "pw-boss-123"})
        assert response.status_code == 403
        assert "_auth_user_id" not in csrf_client.session

    def test_login_with_token_works(self, csrf_client: Client, admin_user: User) -> None:
        """The same POST with the page's token logs in (the refusal above is CSRF's)."""
        token = csrf_token(csrf_client, "/accounts/login/")
        response = csrf_client.post(
            "/accounts/login/",
            {"username": "boss", "password": "pw-boss-123", "csrfmiddlewaretoken": token},
        )
        assert response.status_code == 302
        assert csrf_client.session["_auth_user_id"] == str(admin_user.pk)

    def test_logout_without_token_is_refused(self, csrf_client: Client, user: User) -> None:
        """A forged logout POST is a 403 and the session survives."""
        csrf_client.force_login(user)
        assert csrf_client.post("/accounts/logout/").status_code == 403
        assert csrf_client.get("/search/").status_code == 200

    def test_admin_add_without_token_is_refused(
        self, csrf_client: Client, admin_user: User
    ) -> None:
        """A forged admin "add document" POST is a 403 and creates nothing."""
        csrf_client.force_login(admin_user)
        data = {"title": "Forged", "text": "Forged text.", "tags": "", **INLINE_MANAGEMENT}
        assert csrf_client.post(ADD_URL, data).status_code == 403
        assert Document.objects.exists() is False
        data["csrfmiddlewaretoken"] = csrf_token(csrf_client, ADD_URL)
        assert csrf_client.post(ADD_URL, data).status_code == 302
        assert Document.objects.get().title == "Forged"


# -- 3. Headers and production settings ---------------------------------------

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


# -- 4. Rate limits -------------------------------------------------------------


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


# -- 6. No leaks ----------------------------------------------------------------

SECRET_TITLE: Final = "Merger negotiation plan"
SECRET_TEXT: Final = (
    "Confidential merger negotiation plan: the board approved the acquisition budget "
    "and the negotiation timeline for the merger."
)


@pytest.fixture
def public_documents() -> list[Document]:
    return [
        make_document("Merger guidelines", "Public guidelines for merger announcements."),
        make_document("Budget timeline", "The yearly budget timeline and its approval steps."),
        make_document("Onboarding", "How new employees get a laptop and a badge."),
    ]


def create_secret(group: Group) -> Document:
    return make_document(SECRET_TITLE, SECRET_TEXT, groups=[group], tags=["board"])


def api_view_of(client: Client, **params: str) -> dict[str, Any]:
    """What the search API reveals for a query, without timings and log ids."""
    response = client.get("/api/search", params)
    assert response.status_code == 200, response.content
    data = response.json()
    for key in ("timings_ms", "search_id"):
        data.pop(key)
    return data


@pytest.fixture
def staff_viewer(db: None) -> User:
    """A staff member who may view documents in the admin but is in no group."""
    viewer = User.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_document"))
    return viewer


class TestNoLeaks:
    @pytest.mark.parametrize("mode", MODES)
    def test_search_is_as_if_the_document_did_not_exist(
        self,
        client: Client,
        other_user: User,
        hr_group: Group,
        public_documents: list[Document],
        mode: str,
    ) -> None:
        """Results, scores, totals, snippets and suggestions ignore a restricted document."""
        client.force_login(other_user)
        queries = [
            {"q": "merger negotiation plan", "mode": mode},
            {"q": "budget approval", "mode": mode, "k": "1"},
            {"q": "negotiaton", "mode": mode},  # Misspelt: title suggestions.
            {"q": "merger", "mode": mode, "tag": "board"},
        ]
        before = [api_view_of(client, **query) for query in queries]
        pages_before = [client.get("/search/", query).context["page"].total for query in queries]
        secret = create_secret(hr_group)

        assert [api_view_of(client, **query) for query in queries] == before
        assert before[0]["total"] >= 1  # The query does find public documents.
        for query, total in zip(queries, pages_before, strict=True):
            response = client.get("/search/", query)
            assert response.context["page"].total == total
            content = response.content.decode()
            assert SECRET_TITLE not in content
            assert "Confidential" not in content
            assert f"/documents/{secret.pk}/" not in content

    def test_document_page_and_api_are_404(
        self, client: Client, other_user: User, hr_group: Group
    ) -> None:
        """A restricted document does not exist for outsiders (404, not 403)."""
        secret = create_secret(hr_group)
        client.force_login(other_user)
        page = client.get(f"/documents/{secret.pk}/")
        assert page.status_code == 404
        assert SECRET_TITLE not in page.content.decode()
        api = client.get(f"/api/documents/{secret.pk}")
        assert api.status_code == 404
        assert api.json() == {"error": "Document not found."}

    def test_admin_changelist_hides_it(
        self, client: Client, staff_viewer: User, hr_group: Group, public_documents: list[Document]
    ) -> None:
        """Staff outside the group do not see it in the changelist, its search or its count."""
        secret = create_secret(hr_group)
        client.force_login(staff_viewer)
        response = client.get(CHANGELIST_URL)
        assert response.status_code == 200
        assert response.context["cl"].result_count == len(public_documents)
        assert SECRET_TITLE not in response.content.decode()
        response = client.get(CHANGELIST_URL, {"q": "merger negotiation"})
        assert response.context["cl"].result_count == 0
        assert response.context["cl"].full_result_count == len(public_documents)
        assert f"/{secret.pk}/change/" not in response.content.decode()

    def test_admin_object_pages_do_not_show_it(
        self, client: Client, staff_viewer: User, hr_group: Group
    ) -> None:
        """The change and history pages redirect as for a missing object."""
        secret = create_secret(hr_group)
        client.force_login(staff_viewer)
        for suffix in ("change/", "history/", "delete/"):
            response = client.get(f"/admin/documents/document/{secret.pk}/{suffix}")
            assert response.status_code in (302, 403, 404), suffix
            assert "merger" not in response.content.decode().lower()
            if response.status_code == 302:
                assert response["Location"] == "/admin/"

    def test_members_do_see_it(self, client: Client, staff_viewer: User, hr_group: Group) -> None:
        """The same staff member sees it once in the group (the tests above are not vacuous)."""
        secret = create_secret(hr_group)
        staff_viewer.groups.add(hr_group)
        client.force_login(staff_viewer)
        assert SECRET_TITLE in client.get(CHANGELIST_URL).content.decode()
        assert client.get(change_url(secret)).status_code == 200
        ids = [r["id"] for r in api_view_of(client, q="merger negotiation")["results"]]
        assert ids == [secret.pk]


# -- 7. Stored XSS ----------------------------------------------------------------

SCRIPT: Final = "<script>alert(1)</script>"
IMG: Final = '"><img src=x onerror=alert(1)>'
RAW_MARKERS: Final = ("<script>alert", "<img src=x")


@pytest.fixture
def hostile(tmp_path: Path, settings: SettingsWrapper) -> Document:
    """A document whose title, text, tags and file name all carry markup."""
    settings.MEDIA_ROOT = tmp_path
    text = f"Quarterly figures {SCRIPT} and more quarterly figures {IMG} end."
    result = document_ingest_bytes(
        data=f"Quarterly figures {SCRIPT} {IMG}\n\n{text}".encode(),
        filename=f"{IMG}.txt",
        tags=[f"{SCRIPT}"],
    )
    assert result.document is not None
    document = result.document
    documents_embed(document_ids=[document.pk])
    document.refresh_from_db()
    assert document.title.startswith("Quarterly figures <script>")
    assert document.original_filename == f"{IMG}.txt"
    return document


def assert_no_markup(response: TestResponse) -> None:
    assert response.status_code == 200
    content = response.content.decode()
    for marker in RAW_MARKERS:
        assert marker not in content


class TestStoredXss:
    @pytest.mark.parametrize("mode", MODES)
    def test_search_results(self, admin_client: Client, hostile: Document, mode: str) -> None:
        """Search results (page, htmx partial and API) escape titles and snippets."""
        plain = {"q": "quarterly figures", "mode": mode}
        page = admin_client.get("/search/", plain)
        assert [item.document.pk for item in page.context["page"].items] == [hostile.pk]
        assert "&lt;script&gt;" in page.content.decode()
        assert admin_client.get("/api/search", plain).json()["results"][0]["title"] == (
            hostile.title
        )
        for params in (plain, {"q": f"quarterly {SCRIPT} {IMG}", "mode": mode}):
            assert_no_markup(admin_client.get("/search/", params))
            assert_no_markup(admin_client.get("/search/", params, headers={"HX-Request": "true"}))
            assert_no_markup(admin_client.get("/api/search", params))

    def test_document_page_and_api(self, admin_client: Client, hostile: Document) -> None:
        """The document page escapes title, text, tags and file name; the API body has no markup."""
        page = admin_client.get(f"/documents/{hostile.pk}/")
        assert_no_markup(page)
        assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;.txt" in page.content.decode()
        api = admin_client.get(f"/api/documents/{hostile.pk}")
        assert_no_markup(api)
        assert api.json()["text"] == hostile.text

    def test_admin_pages(self, admin_client: Client, hostile: Document) -> None:
        """The admin changelist, change, history and delete pages escape it all."""
        hostile.last_error = f"failed {SCRIPT}"
        hostile.save(update_fields=["last_error"])
        for path in (
            CHANGELIST_URL,
            f"{CHANGELIST_URL}?q=quarterly",
            change_url(hostile),
            f"/admin/documents/document/{hostile.pk}/history/",
            f"/admin/documents/document/{hostile.pk}/delete/",
        ):
            response = admin_client.get(path)
            assert_no_markup(response)
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.content.decode(), path
