"""Helpers of the analysts' SQL tests: cursors as a role, sessions, results, vectors."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction

from search import analytics
from search.ranking.backends.semantic import embed_query
from search.ranking.query import parse_query

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextmanager
def as_role(name: str) -> Iterator[Any]:
    """A cursor in the test's transaction (so it sees the test's rows) as ``name``."""
    with connection.cursor() as cursor:
        cursor.execute(f'SET ROLE "{name}"')
        try:
            yield cursor
        finally:
            cursor.execute("RESET ROLE")


@contextmanager
def login(name: str) -> Iterator[psycopg.Connection[Any]]:
    """A session of its own, logged in as ``name`` (trust on the local socket)."""
    with psycopg.connect(analytics.analyst_dsn(name), autocommit=True) as session:
        yield session


def refused(cursor: Any, statement: str, params: list[Any] | None = None) -> psycopg.Error:
    """Run a statement that must fail; return PostgreSQL's error."""
    with pytest.raises(DatabaseError) as info, transaction.atomic():
        cursor.execute(statement, params)
    assert isinstance(info.value.__cause__, psycopg.Error)
    return info.value.__cause__


def rows(cursor: Any, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    cursor.execute(statement, params)
    return list(cursor.fetchall())


def vector(text: str) -> str:
    """The query vector the app computes for ``text``, as a pgvector literal."""
    return embed_query(parse_query(text).semantic_text)[0].vector.to_text()
