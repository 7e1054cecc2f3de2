"""No leaks: a restricted document is as if it did not exist for outsiders."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from documents.models import Document
from tests.factories import make_document
from tests.security.helpers import CHANGELIST_URL, MODES, change_url

if TYPE_CHECKING:
    from django.contrib.auth.models import Group

pytestmark = pytest.mark.django_db

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
