"""Searches and result clicks are logged, for visible documents and own searches only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.test import Client

from search.models import SearchQueryLog, SearchResultClick
from tests.factories import make_document
from tests.search.web.helpers import api_search_url, document_url, html_of, search_url

if TYPE_CHECKING:
    from django.contrib.auth.models import Group, User

    from documents.models import Document

pytestmark = pytest.mark.django_db


class TestLogging:
    def test_search_is_logged(self, logged_in: Client, user: User, vacation: Document) -> None:
        """Each page search stores the query, its result count and latency."""
        logged_in.get(search_url(), {"q": "vacation", "mode": "keyword", "tag": "hr"})
        log = SearchQueryLog.objects.get()
        assert log.user == user
        assert log.query == "vacation"
        assert log.mode == "keyword"
        assert log.source == "web"
        assert log.result_count == 1
        assert log.latency_ms > 0
        assert log.filters == {"tags": ["hr"]}

    def test_api_search_is_logged(self, logged_in: Client, vacation: Document) -> None:
        """API searches are logged with their own source."""
        data = logged_in.get(api_search_url(), {"q": "vacation"}).json()
        log = SearchQueryLog.objects.get()
        assert log.source == "api"
        assert data["search_id"] == log.pk

    def test_opening_a_result_logs_a_click(
        self, logged_in: Client, user: User, vacation: Document
    ) -> None:
        """Result links carry the search id and rank; opening one logs a click."""
        response = logged_in.get(search_url(), {"q": "vacation", "mode": "keyword"})
        log = SearchQueryLog.objects.get()
        link = f"{document_url(vacation)}?from_search={log.pk}&amp;rank=1"
        assert link in html_of(response)
        response = logged_in.get(document_url(vacation), {"from_search": log.pk, "rank": 1})
        assert response.status_code == 200
        click = SearchResultClick.objects.get()
        assert (click.search, click.user, click.document_id, click.rank) == (
            log,
            user,
            vacation.pk,
            1,
        )

    def test_no_click_for_an_invisible_document(
        self, client: Client, other_user: User, hr_group: Group
    ) -> None:
        """A click is recorded only once the document is known to be visible."""
        secret = make_document("Salary bands", "Confidential.", groups=[hr_group])
        client.force_login(other_user)
        client.get(search_url(), {"q": "salary"})
        log = SearchQueryLog.objects.get()
        response = client.get(document_url(secret), {"from_search": log.pk, "rank": 1})
        assert response.status_code == 404
        assert SearchResultClick.objects.exists() is False

    def test_no_click_for_someone_elses_search(
        self, client: Client, user: User, other_user: User, vacation: Document
    ) -> None:
        """A click never attaches to another user's search; bad ids are ignored."""
        client.force_login(other_user)
        client.get(search_url(), {"q": "vacation"})
        log = SearchQueryLog.objects.get()
        client.force_login(user)
        for params in ({"from_search": log.pk, "rank": 1}, {"from_search": "x", "rank": "y"}):
            assert client.get(document_url(vacation), params).status_code == 200
        assert SearchResultClick.objects.exists() is False
