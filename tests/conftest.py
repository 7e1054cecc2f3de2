"""Shared fixtures: users, groups and an indexed document factory."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import Group, User

from documents.embeddings import FakeProvider, reset_embedder, set_embedder
from documents.selectors import forget_search_model

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True)
def fake_embedder() -> Iterator[FakeProvider]:
    """Every test starts with the deterministic embedder."""
    provider = FakeProvider()
    set_embedder(provider)
    forget_search_model()
    yield provider
    reset_embedder()
    forget_search_model()


@pytest.fixture
def user(db: None) -> User:
    return User.objects.create_user("staff", password="pw-staff-123")


@pytest.fixture
def other_user(db: None) -> User:
    return User.objects.create_user("outsider", password="pw-outsider-123")


@pytest.fixture
def hr_group(db: None) -> Group:
    return Group.objects.create(name="HR")


@pytest.fixture
def admin_user(db: None) -> User:
    return User.objects.create_superuser("boss", "boss@example.com", "pw-boss-123")


@pytest.fixture
def created_databases() -> Iterator[list[str]]:
    """Names of databases a command will create; dropped after the test."""
    import psycopg
    from django.db import connection
    from psycopg import sql

    names: list[str] = []
    yield names
    params = connection.get_connection_params()
    for key in ("dbname", "cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        for name in names:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
