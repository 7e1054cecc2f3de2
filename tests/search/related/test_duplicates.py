"""Near-duplicate pairs: each pair of copies once, visible ones only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from search.related.duplicates import near_duplicate_pairs
from tests.factories import make_document

if TYPE_CHECKING:
    from django.contrib.auth.models import Group
    from django.test import Client

pytestmark = pytest.mark.django_db


class TestNearDuplicates:
    def test_copies_are_paired_once(
        self, admin_user: User, user: User, hr_group: Group, client: Client
    ) -> None:
        """Copies above the threshold are listed once per pair, visible ones only."""
        text = "Tomato seedlings need warmth, light and careful watering."
        a = make_document("Seedlings", text)
        b = make_document("Seedlings (copy)", text)
        make_document("Budget", "Invoices and quarterly taxation ledger.")
        secret = make_document("Seedlings (HR copy)", text, groups=[hr_group])
        pairs = near_duplicate_pairs(user=user, threshold=0.9)
        assert [(p.first.document_id, p.second.document_id) for p in pairs] == [(a.pk, b.pk)]
        assert pairs[0].similarity > 0.9
        everyone = near_duplicate_pairs(user=admin_user, threshold=0.9)
        assert len(everyone) == 3
        assert any(secret.pk in (p.first.document_id, p.second.document_id) for p in everyone)
        client.force_login(admin_user)
        page = client.get(
            reverse("admin:clustering_clusteringrun_duplicates"), {"threshold": "0.9"}
        )
        assert "Seedlings (copy)" in page.content.decode()
