"""CSRF: forged login, logout and admin posts are refused."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from documents.models import Document
from tests.security.helpers import ADD_URL, INLINE_MANAGEMENT

pytestmark = pytest.mark.django_db


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
