"""Fixtures of the page and API tests: two documents and a signed-in client."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.test import Client

from tests.factories import make_document

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from documents.models import Document


@pytest.fixture
def vacation() -> Document:
    return make_document(
        "Vacation policy",
        "Employees receive twenty vacation days per year. Unused vacation expires.",
        tags=["hr", "policy"],
    )


@pytest.fixture
def expenses() -> Document:
    return make_document(
        "Expense reports",
        "Submit expense reports with receipts within thirty days of travel.",
        tags=["finance"],
    )


@pytest.fixture
def logged_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client
