"""The analysts' commands: analyze_query, embed_query and create_analyst_role."""

from __future__ import annotations

import secrets
from io import StringIO

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from search import analytics
from search.ranking.backends.hybrid import semantic_weight_for
from tests.search.analytics.helpers import rows, vector

pytestmark = pytest.mark.django_db


class TestCommands:
    def test_analyze_query_prints_the_apps_terms(self) -> None:
        """The terms come out as a SQL array of the app's analysis."""
        out = StringIO()
        call_command("analyze_query", "임베딩은 검색 엔진을", stdout=out)
        assert out.getvalue().strip() == "ARRAY['임베딩','검색','엔진']::text[]"
        with connection.cursor() as cursor:
            assert rows(cursor, f"SELECT {out.getvalue()}")[0][0] == ["임베딩", "검색", "엔진"]

    def test_analyze_query_warns_about_operators(self) -> None:
        """Phrases and exclusions are not applied by SQL, and the command says so."""
        out, err = StringIO(), StringIO()
        call_command("analyze_query", 'vector "search engine" -pasta', stdout=out, stderr=err)
        assert "not applied" in err.getvalue()
        assert "pasta" not in out.getvalue()

    def test_analyze_query_semantic_weight(self) -> None:
        out = StringIO()
        call_command("analyze_query", "임베딩 search", "--semantic-weight", stdout=out)
        assert float(out.getvalue()) == semantic_weight_for("임베딩 search")

    def test_embed_query_prints_the_apps_vector(self) -> None:
        """The literal is the app's query vector and casts to the model's size."""
        out, err = StringIO(), StringIO()
        call_command("embed_query", "vector search", stdout=out, stderr=err)
        assert out.getvalue().strip() == vector("vector search")
        assert err.getvalue() == ""
        with connection.cursor() as cursor:
            assert rows(cursor, "SELECT vector_dims(%s::vector)", [out.getvalue().strip()]) == [
                (384,)
            ]

    def test_create_is_idempotent_and_sets_defaults(self) -> None:
        """A new role is read-only, times out after 30s, and can be created twice."""
        name = f"test_analyst_new_{secrets.token_hex(3)}"
        out = StringIO()
        call_command("create_analyst_role", name, "--password", "s3cret", stdout=out)
        call_command("create_analyst_role", name, "--password", "s3cret", stdout=out)
        assert out.getvalue().splitlines() == [
            f"Created analyst role {name}.",
            f"Updated analyst role {name}.",
        ]
        with connection.cursor() as cursor:
            config, password, login_ = rows(
                cursor,
                "SELECT r.rolconfig, a.rolpassword, a.rolcanlogin FROM pg_roles r"
                " JOIN pg_authid a ON a.oid = r.oid WHERE r.rolname = %s",
                [name],
            )[0]
        assert {"statement_timeout=30s", "default_transaction_read_only=on"} <= set(config)
        assert password.startswith("SCRAM-SHA-256$")
        assert login_ is True

    def test_print_dsn(self, analyst: str) -> None:
        """--print-dsn prints only a URI that logs in as the role."""
        out, err = StringIO(), StringIO()
        call_command(
            "create_analyst_role",
            analyst,
            "--print-dsn",
            "--statement-timeout",
            "200ms",
            stdout=out,
            stderr=err,
        )
        dsn = out.getvalue().strip()
        assert dsn.startswith(f"postgresql://{analyst}@")
        with psycopg.connect(dsn) as session:
            assert session.execute("SELECT current_user").fetchone() == (analyst,)

    def test_dsn_for_a_server_over_tcp(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A production DSN names host, port and TLS mode, never a password."""
        monkeypatch.setitem(connection.settings_dict, "HOST", "db.example.com")
        monkeypatch.setitem(connection.settings_dict, "PORT", 5432)
        monkeypatch.setitem(connection.settings_dict, "OPTIONS", {"sslmode": "verify-full"})
        database = connection.settings_dict["NAME"]
        assert analytics.analyst_dsn("alice") == (
            f"postgresql://alice@db.example.com:5432/{database}?sslmode=verify-full"
        )

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["postgres"], "was not created by create_analyst_role"),
            (["Bad-Name"], "invalid role name"),
            ([], "give a role NAME"),
            (["valid_name", "--grant-group", "No such group"], "no group named"),
            (["valid_name", "--password-from-env", "ANALYTICS_TEST_UNSET"], "unset or empty"),
            (["valid_name", "--statement-timeout", "soon"], "PostgreSQL refused"),
            (["never_created_role", "--drop"], "is not an analyst role"),
        ],
    )
    def test_refusals(self, args: list[str], message: str) -> None:
        """Foreign roles, bad names, unknown groups and bad values are refused clearly."""
        with pytest.raises(CommandError, match=message):
            call_command("create_analyst_role", *args, stdout=StringIO())

    def test_password_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        name = f"test_analyst_env_{secrets.token_hex(3)}"
        monkeypatch.setenv("ANALYTICS_TEST_PASSWORD", "from-env")
        call_command(
            "create_analyst_role",
            name,
            "--password-from-env",
            "ANALYTICS_TEST_PASSWORD",
            stdout=StringIO(),
        )
        with connection.cursor() as cursor:
            assert rows(
                cursor,
                "SELECT rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid WHERE rolname = %s",
                [name],
            ) == [(True,)]
