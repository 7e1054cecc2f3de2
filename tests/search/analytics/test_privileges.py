"""What an analyst role may read, and all it may not write, create or become."""

from __future__ import annotations

from io import StringIO
from typing import TYPE_CHECKING

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from documents.models import Document
from tests.search.analytics.helpers import as_role, login, refused, rows

if TYPE_CHECKING:
    from django.contrib.auth.models import Group

pytestmark = pytest.mark.django_db


class TestAnalystPrivileges:
    @pytest.mark.parametrize(
        "table",
        [
            "auth_user",
            "django_session",
            "documents_document",
            "documents_chunk",
            "search_searchquerylog",
            "analytics_private.role_group_grants",
            "analytics_private.search_settings",
            "analytics_private.visible_document",
        ],
    )
    def test_cannot_read_app_tables(self, analyst: str, table: str) -> None:
        """The app's tables (password hashes, sessions) and internals are unreadable."""
        with as_role(analyst) as cursor:
            error = refused(cursor, f"SELECT * FROM {table} LIMIT 1")
        assert isinstance(error, psycopg.errors.InsufficientPrivilege)

    @pytest.mark.parametrize(
        "statement",
        [
            "INSERT INTO analytics.chunks (document_id) VALUES (1)",
            "DELETE FROM analytics.documents",
            "UPDATE analytics.search_queries SET query = 'x'",
            "DELETE FROM analytics.chunks",
            "INSERT INTO documents_document (title) VALUES ('x')",
            "CREATE TABLE public.analyst_table (id int)",
            "CREATE TABLE analytics.analyst_table (id int)",
            "CREATE VIEW analytics.analyst_view AS SELECT 1",
            "CREATE FUNCTION analytics.analyst_f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE SCHEMA analyst_schema",
            "SELECT pg_read_file('postgresql.conf')",
            "SELECT analytics_private.grant_analysts()",
            "SELECT analytics_private.grant_analyst('postgres')",
            "COPY (SELECT 1) TO '/tmp/analyst-copy'",
        ],
    )
    def test_cannot_write_create_or_escalate(self, analyst: str, statement: str) -> None:
        """No writes, no new objects, no internal functions, no other roles."""
        with as_role(analyst) as cursor:
            error = refused(cursor, statement)
        assert isinstance(error, psycopg.errors.InsufficientPrivilege)

    def test_reads_every_view_and_runs_the_functions(
        self, corpus: dict[str, Document], analyst: str
    ) -> None:
        """Everything in the analytics schema is open to the analyst."""
        with connection.cursor() as cursor:
            views = [
                r[0]
                for r in rows(
                    cursor,
                    "SELECT table_name FROM information_schema.views"
                    " WHERE table_schema = 'analytics'",
                )
            ]
        with as_role(analyst) as cursor:
            for view in views:
                cursor.execute(f"SELECT * FROM analytics.{view} LIMIT 1")
            cursor.execute("SELECT * FROM analytics.related_documents(%s)", [corpus["vectors"].pk])
            assert len(cursor.fetchall()) > 0
        assert len(views) >= 15

    def test_session_defaults(self, analyst: str) -> None:
        """A login gets read-only transactions, the timeout, the schema and the time zone."""
        names = ("default_transaction_read_only", "statement_timeout", "search_path", "TimeZone")
        with login(analyst) as session:
            show = {name: session.execute(f"SHOW {name}").fetchall()[0][0] for name in names}
            # search_path: the views answer to their short names.
            assert session.execute("SELECT count(*) FROM documents").fetchall()[0][0] >= 0
        assert show == {
            "default_transaction_read_only": "on",
            "statement_timeout": "200ms",
            "search_path": "analytics, public",
            "TimeZone": settings.TIME_ZONE,
        }

    def test_statement_timeout_stops_long_queries(self, analyst: str) -> None:
        """A careless query is cancelled by the role's statement timeout."""
        with login(analyst) as session, pytest.raises(psycopg.errors.QueryCanceled):
            session.execute("SELECT pg_sleep(5)")

    def test_read_only_by_default(self, analyst: str) -> None:
        """Even temporary tables need an explicit read-write transaction."""
        with login(analyst) as session, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            session.execute("CREATE TEMP TABLE scratch (id int)")

    @pytest.mark.parametrize(
        "statement", ["SET ROLE postgres", "SELECT set_config('role', 'postgres', false)"]
    )
    def test_cannot_become_another_role(self, analyst: str, statement: str) -> None:
        """A logged-in analyst cannot act as the app's role, nor claim to."""
        with login(analyst) as session, pytest.raises(psycopg.errors.InsufficientPrivilege):
            session.execute(statement)

    def test_update_keeps_what_it_is_not_told(self, analyst: str, hr_group: Group) -> None:
        """Granting a group leaves the role's statement timeout as it was."""
        call_command("create_analyst_role", analyst, "--grant-group", "HR", stdout=StringIO())
        with connection.cursor() as cursor:
            config = rows(cursor, "SELECT rolconfig FROM pg_roles WHERE rolname = %s", [analyst])[
                0
            ][0]
        assert "statement_timeout=200ms" in config
