"""Bearer tokens for the JSON API: who they act as, what they open, how they end."""

from __future__ import annotations

import datetime
import hashlib
from io import StringIO
from typing import TYPE_CHECKING

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from search.models import ApiToken
from search.services import api_token_create
from tests.factories import make_document

if TYPE_CHECKING:
    from django.contrib.auth.models import Group, User
    from django.test import Client

    from documents.models import Document

pytestmark = pytest.mark.django_db

MODES = ["keyword", "semantic", "hybrid"]


def bearer(key: str) -> dict[str, str]:
    """Request headers that authenticate with ``key``."""
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def secret(hr_group: Group) -> Document:
    return make_document(
        "Salary bands", "Confidential salary bands for every level.", groups=[hr_group]
    )


@pytest.fixture
def public() -> Document:
    return make_document("Salary survey", "The public salary survey method.")


class TestAuthentication:
    @pytest.mark.parametrize("mode", MODES)
    def test_a_token_sees_what_its_user_may_see(
        self,
        client: Client,
        user: User,
        other_user: User,
        hr_group: Group,
        secret: Document,
        public: Document,
        mode: str,
    ) -> None:
        user.groups.add(hr_group)
        _, member_key = api_token_create(user=user, name="member")
        _, outsider_key = api_token_create(user=other_user, name="outsider")
        params = {"q": "salary bands", "mode": mode}
        member = client.get("/api/search", params, headers=bearer(member_key))
        outsider = client.get("/api/search", params, headers=bearer(outsider_key))
        assert member.status_code == outsider.status_code == 200
        assert secret.pk in [r["id"] for r in member.json()["results"]]
        assert [r["id"] for r in outsider.json()["results"]] == [public.pk]
        assert (
            client.get(f"/api/documents/{secret.pk}", headers=bearer(outsider_key)).status_code
            == 404
        )
        related = client.get(f"/api/documents/{public.pk}/related", headers=bearer(outsider_key))
        assert secret.pk not in [r["document_id"] for r in related.json()["results"]]

    def test_the_search_is_logged_as_the_tokens_user(
        self, client: Client, user: User, public: Document
    ) -> None:
        _, key = api_token_create(user=user, name="bot")
        response = client.get("/api/search", {"q": "survey"}, headers=bearer(key))
        assert response.status_code == 200
        from search.models import SearchQueryLog

        log = SearchQueryLog.objects.get(pk=response.json()["search_id"])
        assert (log.user, log.source) == (user, "api")

    @pytest.mark.parametrize(
        "header",
        [
            "Bearer dsk_not-a-real-key",
            "Bearer ",
            "Basic c3RhZmY6cHc=",
            "Bearer " + "dsk_" + "x" * 5000,
            "Bearer <script>alert(1)</script>",
        ],
    )
    def test_a_bad_key_gets_a_401_even_with_a_session(
        self, client: Client, user: User, header: str
    ) -> None:
        """A client that sends a key means that key: no fallback to the session."""
        client.force_login(user)
        response = client.get("/api/search", {"q": "x"}, headers={"Authorization": header})
        assert response.status_code == 401
        assert response.json() == {"error": "invalid, expired or revoked API token"}
        assert response["WWW-Authenticate"] == 'Bearer error="invalid_token"'

    def test_expired_revoked_and_inactive_tokens_stop_working(
        self, client: Client, user: User, other_user: User
    ) -> None:
        expired, expired_key = api_token_create(user=user, name="old")
        expired.expires_at = timezone.now() - datetime.timedelta(seconds=1)
        expired.save()
        revoked, revoked_key = api_token_create(user=user, name="revoked")
        revoked.delete()
        _, inactive_key = api_token_create(user=other_user, name="leaver")
        other_user.is_active = False
        other_user.save()
        for key in (expired_key, revoked_key, inactive_key):
            assert client.get("/api/search", {"q": "x"}, headers=bearer(key)).status_code == 401

    def test_a_token_opens_the_api_only(self, client: Client, admin_user: User) -> None:
        """Pages and the admin still want a session, even for a superuser's token."""
        _, key = api_token_create(user=admin_user, name="bot")
        search_page = client.get("/search/", {"q": "x"}, headers=bearer(key))
        assert search_page.status_code == 302
        assert search_page["Location"].startswith(reverse("login"))
        admin_page = client.get("/admin/", headers=bearer(key))
        assert admin_page.status_code == 302

    def test_only_a_digest_is_stored_and_last_use_is_recorded(
        self, client: Client, user: User
    ) -> None:
        token, key = api_token_create(user=user, name="bot")
        assert key.startswith("dsk_") and len(key) > 40
        assert token.digest == hashlib.sha256(key.encode()).hexdigest()
        assert key not in str(ApiToken.objects.filter(pk=token.pk).values().get())
        assert token.last_used_at is None
        client.get("/api/search", {"q": "x"}, headers=bearer(key))
        token.refresh_from_db()
        assert token.last_used_at is not None

    def test_anonymous_api_calls_are_told_how_to_authenticate(self, client: Client) -> None:
        response = client.get("/api/search", {"q": "x"})
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")


class TestCreateCommand:
    def test_prints_a_working_key(self, client: Client, user: User) -> None:
        out, err = StringIO(), StringIO()
        call_command(
            "create_api_token",
            "staff",
            "--name",
            "wiki bot",
            "--expires-in-days",
            "30",
            stdout=out,
            stderr=err,
        )
        key = out.getvalue().strip()
        token = ApiToken.objects.get(user=user)
        assert token.name == "wiki bot"
        assert token.expires_at is not None
        assert token.expires_at - timezone.now() > datetime.timedelta(days=29)
        assert "shown only now" in err.getvalue()
        assert client.get("/api/search", {"q": "x"}, headers=bearer(key)).status_code == 200

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["nobody"], "no user named 'nobody'"),
            (["staff", "--expires-in-days", "0"], "at least 1"),
        ],
    )
    def test_refuses_bad_arguments(self, user: User, args: list[str], message: str) -> None:
        with pytest.raises(CommandError, match=message):
            call_command("create_api_token", *args)
        assert not ApiToken.objects.exists()


class TestAdmin:
    def test_staff_make_tokens_for_themselves_and_see_the_key_once(
        self, client: Client, user: User, other_user: User
    ) -> None:
        from django.contrib.auth.models import Permission

        user.is_staff = True
        user.save()
        user.user_permissions.add(
            *Permission.objects.filter(codename__in=["add_apitoken", "view_apitoken"])
        )
        api_token_create(user=other_user, name="not yours")
        client.force_login(user)
        url = reverse("admin:search_apitoken_add")
        # Another user's id is not a choice for a non-superuser.
        refused = client.post(url, {"user": other_user.pk, "name": "sneaky"})
        assert refused.status_code == 200
        assert "user" in refused.context["adminform"].form.errors
        response = client.post(url, {"user": user.pk, "name": "mine"}, follow=True)
        messages = [str(m) for m in response.context["messages"]]
        key = next(w for m in messages for w in m.split() if w.startswith("dsk_"))
        assert client.get(reverse("admin:search_apitoken_changelist")).status_code == 200
        listed = client.get(reverse("admin:search_apitoken_changelist"))
        assert "mine" in listed.content.decode()
        assert "not yours" not in listed.content.decode()
        assert key not in listed.content.decode()
        client.logout()
        assert client.get("/api/search", {"q": "x"}, headers=bearer(key)).status_code == 200


class TestSelfService:
    """Any signed-in user manages their own tokens at /account/api-tokens/."""

    url = "/account/api-tokens/"

    def test_create_shows_the_key_once_and_it_works(self, client: Client, user: User) -> None:
        client.force_login(user)
        response = client.post(self.url, {"name": "wiki bot", "expires_in_days": "30"})
        assert response.status_code == 200
        assert "no-store" in response["Cache-Control"]
        key = response.context["new_key"]
        assert key.startswith("dsk_") and key in response.content.decode()
        token = ApiToken.objects.get(user=user)
        assert token.name == "wiki bot"
        assert token.expires_at is not None
        assert datetime.timedelta(days=29) < token.expires_at - timezone.now()
        listing = client.get(self.url).content.decode()
        assert "wiki bot" in listing and token.prefix in listing
        assert key not in listing  # Shown once: the page never has it again.
        client.logout()
        assert client.get("/api/search", {"q": "x"}, headers=bearer(key)).status_code == 200

    def test_never_expiring_and_invalid_input(self, client: Client, user: User) -> None:
        client.force_login(user)
        client.post(self.url, {"name": "forever", "expires_in_days": ""})
        assert ApiToken.objects.get().expires_at is None
        for data in ({"name": ""}, {"name": "x", "expires_in_days": "7"}, {"name": "a\x00b"}):
            response = client.post(self.url, data)
            assert response.status_code == 400
            assert response.context["new_key"] is None
        assert ApiToken.objects.count() == 1

    def test_each_user_sees_and_deletes_only_their_own(
        self, client: Client, user: User, other_user: User
    ) -> None:
        theirs, their_key = api_token_create(user=other_user, name="theirs")
        mine, _ = api_token_create(user=user, name="<script>alert(1)</script>")
        client.force_login(user)
        page = client.get(self.url).content.decode()
        assert "theirs" not in page and theirs.prefix not in page
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        delete = f"/account/api-tokens/{theirs.pk}/delete/"
        assert client.post(delete).status_code == 404
        assert client.get("/api/search", {"q": "x"}, headers=bearer(their_key)).status_code == 200
        assert client.get(f"/account/api-tokens/{mine.pk}/delete/").status_code == 405
        response = client.post(f"/account/api-tokens/{mine.pk}/delete/", follow=True)
        assert "Token deleted" in response.content.decode()
        assert list(ApiToken.objects.values_list("pk", flat=True)) == [theirs.pk]

    def test_a_limit_per_person(self, client: Client, user: User) -> None:
        from search.services import MAX_TOKENS_PER_USER

        for n in range(MAX_TOKENS_PER_USER):
            api_token_create(user=user, name=f"t{n}")
        client.force_login(user)
        response = client.post(self.url, {"name": "one too many"})
        assert response.status_code == 400
        assert "delete one first" in response.content.decode()
        assert ApiToken.objects.filter(user=user).count() == MAX_TOKENS_PER_USER

    def test_forms_need_csrf_and_tokens_do_not_open_the_page(
        self, user: User, admin_user: User
    ) -> None:
        from django.test import Client

        strict = Client(enforce_csrf_checks=True)
        strict.force_login(user)
        assert strict.post(self.url, {"name": "no csrf"}).status_code == 403
        assert not ApiToken.objects.filter(name="no csrf").exists()
        _, key = api_token_create(user=admin_user, name="bot")
        anonymous = Client()
        response = anonymous.get(self.url, headers=bearer(key))
        assert response.status_code == 302  # A token is no session: log in first.
        assert response["Location"].startswith(reverse("login"))
