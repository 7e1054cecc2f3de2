"""Group-restricted documents on the pages and in the API: for members only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.test import Client

from tests.factories import make_document
from tests.search.web.helpers import (
    MODES,
    api_document_url,
    api_ids,
    document_url,
    html_of,
    search_url,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import Group, User

    from documents.models import Document

pytestmark = pytest.mark.django_db


class TestVisibility:
    @pytest.fixture
    def secret(self, hr_group: Group) -> Document:
        return make_document(
            "Salary bands",
            "Confidential salary bands for every engineer level.",
            groups=[hr_group],
        )

    @pytest.fixture
    def public(self) -> Document:
        return make_document("Salary survey", "The public salary survey method.")

    @pytest.mark.parametrize("mode", MODES)
    def test_outsider_never_sees_restricted(
        self, client: Client, other_user: User, secret: Document, public: Document, mode: str
    ) -> None:
        """A group-restricted document is absent for non-members in every mode."""
        client.force_login(other_user)
        response = client.get(search_url(), {"q": "salary bands", "mode": mode})
        assert [i.document.pk for i in response.context["page"].items] == [public.pk]
        assert "Salary bands" not in html_of(response)
        assert api_ids(client, q="salary bands", mode=mode) == [public.pk]

    def test_outsider_gets_no_title_suggestion(
        self, client: Client, other_user: User, secret: Document
    ) -> None:
        """Spelling suggestions draw only on visible titles."""
        client.force_login(other_user)
        response = client.get(search_url(), {"q": "Salary bandz", "mode": "keyword"})
        assert "Salary bands" not in html_of(response)
        assert response.context["page"].suggestions == []

    @pytest.mark.parametrize("mode", MODES)
    def test_member_sees_restricted(
        self, client: Client, user: User, hr_group: Group, secret: Document, mode: str
    ) -> None:
        """Members of the document's group find it."""
        user.groups.add(hr_group)
        client.force_login(user)
        assert secret.pk in api_ids(client, q="salary bands", mode=mode)

    def test_document_page_404_for_outsider(
        self, client: Client, other_user: User, secret: Document
    ) -> None:
        """The document page and API answer 404 (not 403) to non-members."""
        client.force_login(other_user)
        assert client.get(document_url(secret)).status_code == 404
        response = client.get(api_document_url(secret))
        assert response.status_code == 404
        assert response.json() == {"error": "Document not found."}

    def test_document_page_200_for_member(
        self, client: Client, user: User, hr_group: Group, secret: Document
    ) -> None:
        """Members open the document page and its API form."""
        user.groups.add(hr_group)
        client.force_login(user)
        response = client.get(document_url(secret))
        assert response.status_code == 200
        content = html_of(response)
        assert "Salary bands" in content
        assert "HR" in content
        assert "Confidential salary bands" in content
        data = client.get(api_document_url(secret)).json()
        assert data["id"] == secret.pk
        assert data["groups"] == ["HR"]

    def test_missing_document_is_404(self, logged_in: Client) -> None:
        """Unknown ids look exactly like invisible ones."""
        assert logged_in.get("/documents/999999/").status_code == 404
        assert logged_in.get("/api/documents/999999").status_code == 404
