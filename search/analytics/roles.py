"""Analysts' read-only LOGIN roles, their connection URIs and query literals.

Who sees which document: see :func:`analyst_role_create` and
``docs/analysts.md``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import connection, transaction

from search.analytics.schema import PRIVATE_SCHEMA
from search.analytics.search_settings import sync_search_settings

if TYPE_CHECKING:
    from collections.abc import Sequence

_ROLE_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class AnalystRoleError(Exception):
    """An analyst role cannot be created, changed or dropped as asked."""


def _check_role_name(name: str) -> None:
    if not _ROLE_NAME.fullmatch(name) or name.startswith("pg_"):
        raise AnalystRoleError(
            f"invalid role name {name!r}: use lowercase letters, digits and _ "
            "(at most 63, not starting with a digit or pg_)"
        )


def _utility(cursor: Any, template: str, **parts: object) -> None:
    """Run a utility statement (they take no parameters): values are quoted
    by psycopg, ``{role}`` and ``{database}`` as identifiers."""
    from psycopg import sql

    composed = sql.SQL(template).format(
        **{
            key: sql.Identifier(str(value)) if key in ("role", "database") else sql.Literal(value)
            for key, value in parts.items()
        }
    )
    cursor.execute(composed.as_string(connection.connection))


def _prepare_role(cursor: Any, name: str) -> bool:
    """Create the role, or check that an existing one is ours; True if created."""
    cursor.execute(f"SELECT 1 FROM pg_namespace WHERE nspname = '{PRIVATE_SCHEMA}'")
    if cursor.fetchone() is None:
        raise AnalystRoleError("the analytics schema is missing: run python manage.py migrate")
    cursor.execute("SELECT has_schema_privilege('public', 'public', 'CREATE')")
    if cursor.fetchone()[0]:
        raise AnalystRoleError(
            "every role may create objects in schema public, so an analyst could shadow "
            "the functions' operators; run REVOKE CREATE ON SCHEMA public FROM PUBLIC "
            "(the default since PostgreSQL 15) first"
        )
    cursor.execute(
        "SELECT r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication"
        " OR r.rolbypassrls, EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid),"
        f" EXISTS (SELECT 1 FROM {PRIVATE_SCHEMA}.analyst_roles a WHERE a.role_name = r.rolname)"
        " FROM pg_roles r WHERE r.rolname = %s",
        [name],
    )
    row = cursor.fetchone()
    if row is None:
        _utility(cursor, "CREATE ROLE {role} LOGIN NOINHERIT", role=name)
    elif not row[2]:
        raise AnalystRoleError(f"role {name} exists and was not created by create_analyst_role")
    elif row[0] or row[1]:
        raise AnalystRoleError(
            f"role {name} has privileges or memberships an analyst must not have"
        )
    cursor.execute(
        f"INSERT INTO {PRIVATE_SCHEMA}.analyst_roles (role_name) VALUES (%s)"
        " ON CONFLICT DO NOTHING",
        [name],
    )
    return row is None


#: What a new role gets when the command does not say.
DEFAULT_STATEMENT_TIMEOUT: Final = "30s"
DEFAULT_CONNECTION_LIMIT: Final = 10


def _configure_role(
    cursor: Any,
    name: str,
    *,
    password: str | None,
    statement_timeout: str | None,
    connection_limit: int | None,
) -> None:
    """Attributes and session defaults (``ALTER ROLE ... SET``) of an analyst.

    Session defaults are not limits: a session may change them. What
    protects the app is the privileges; these keep a careless query from
    hurting it. ``None`` keeps the role's current value.
    """
    # The other attributes (NOSUPERUSER, NOCREATEROLE, ...) are CREATE
    # ROLE's defaults, checked by _prepare_role; naming them here would need
    # superuser rights the app's role need not have.
    _utility(cursor, "ALTER ROLE {role} LOGIN NOINHERIT", role=name)
    if connection_limit is not None:
        _utility(
            cursor,
            "ALTER ROLE {role} CONNECTION LIMIT {limit}",
            role=name,
            limit=int(connection_limit),
        )
    if password is not None:
        verifier = connection.connection.pgconn.encrypt_password(
            password.encode(), name.encode()
        ).decode()
        _utility(cursor, "ALTER ROLE {role} PASSWORD {verifier}", role=name, verifier=verifier)
    defaults: list[tuple[str, object]] = [
        ("default_transaction_read_only", "on"),
        ("idle_in_transaction_session_timeout", "15min"),
        ("timezone", settings.TIME_ZONE),
    ]
    if statement_timeout is not None:
        defaults.append(("statement_timeout", statement_timeout))
    for parameter, value in defaults:
        _utility(cursor, f"ALTER ROLE {{role}} SET {parameter} = {{value}}", role=name, value=value)
    # A list: quoted as one literal it would name a single schema.
    _utility(cursor, "ALTER ROLE {role} SET search_path = analytics, public", role=name)


def _set_groups(cursor: Any, name: str, *, grant: Sequence[str], revoke: Sequence[str]) -> None:
    from django.contrib.auth.models import Group

    for group_name, query in (
        *(
            (g, "INSERT INTO {t} (role_name, group_id) VALUES (%s, %s) ON CONFLICT DO NOTHING")
            for g in grant
        ),
        *((g, "DELETE FROM {t} WHERE role_name = %s AND group_id = %s") for g in revoke),
    ):
        group_id = Group.objects.filter(name=group_name).values_list("pk", flat=True).first()
        if group_id is None:
            raise AnalystRoleError(f"no group named {group_name!r}")
        cursor.execute(query.format(t=f"{PRIVATE_SCHEMA}.role_group_grants"), [name, group_id])


def analyst_role_create(
    *,
    name: str,
    password: str | None = None,
    statement_timeout: str | None = None,
    connection_limit: int | None = None,
    grant_groups: Sequence[str] = (),
    revoke_groups: Sequence[str] = (),
) -> bool:
    """Create or update a read-only LOGIN role for the analytics schema.

    Idempotent. The role may SELECT the ``analytics`` views and EXECUTE its
    functions, nothing else; it sees restricted documents only of the
    groups granted to it. The password is sent as a SCRAM verifier, never
    in clear. Options left ``None`` keep an existing role's value (a new
    role gets the defaults). Returns whether the role was created. Needs
    CREATEROLE.
    """
    _check_role_name(name)
    with transaction.atomic(), connection.cursor() as cursor:
        created = _prepare_role(cursor, name)
        if created:
            statement_timeout = statement_timeout or DEFAULT_STATEMENT_TIMEOUT
            connection_limit = connection_limit or DEFAULT_CONNECTION_LIMIT
        _configure_role(
            cursor,
            name,
            password=password,
            statement_timeout=statement_timeout,
            connection_limit=connection_limit,
        )
        cursor.execute(f"SELECT {PRIVATE_SCHEMA}.grant_analyst(%s)", [name])
        _set_groups(cursor, name, grant=grant_groups, revoke=revoke_groups)
    sync_search_settings()
    return created


def analyst_role_drop(*, name: str) -> None:
    """Drop an analyst role and everything granted to it in this database."""
    _check_role_name(name)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {PRIVATE_SCHEMA}.analyst_roles WHERE role_name = %s RETURNING 1",
            [name],
        )
        if cursor.fetchone() is None:
            raise AnalystRoleError(f"{name} is not an analyst role of this database")
        cursor.execute(
            "SELECT pg_has_role(current_user, r.oid, 'USAGE'), current_database()"
            " FROM pg_roles r WHERE r.rolname = %s",
            [name],
        )
        if (row := cursor.fetchone()) is None:
            return  # Dropped by hand already.
        for statement in _REVOKE_ANALYST:
            _utility(cursor, statement, role=name, database=row[1])
        if row[0]:
            # Also default privileges and the like; a role with CREATEROLE
            # but not the analyst's privileges may not (PostgreSQL 16+).
            _utility(cursor, "DROP OWNED BY {role}", role=name)
        _utility(cursor, "DROP ROLE {role}", role=name)


#: What analytics_private.grant_analyst grants (analysts own nothing).
_REVOKE_ANALYST: Final = (
    "REVOKE ALL ON ALL TABLES IN SCHEMA analytics FROM {role}",
    "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA analytics FROM {role}",
    "REVOKE ALL ON SCHEMA analytics FROM {role}",
    "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA analytics_private FROM {role}",
    "REVOKE ALL ON SCHEMA analytics_private FROM {role}",
    "REVOKE ALL ON SCHEMA public FROM {role}",
    "REVOKE ALL ON DATABASE {database} FROM {role}",
)


def analyst_dsn(name: str) -> str:
    """A libpq connection URI for role ``name`` to the app's database (no password)."""
    config = connection.settings_dict
    options = config.get("OPTIONS") or {}
    host, port = config["HOST"] or options.get("host", ""), str(config["PORT"] or "")
    user, database = quote(name, safe=""), quote(config["NAME"], safe="")
    query: dict[str, str] = {}
    if not host or host.startswith("/"):
        # A Unix socket: libpq takes its directory as the host parameter.
        netloc = f"{user}@"
        query.update({"host": host} if host else {})
        query.update({"port": port} if port else {})
    else:
        netloc = f"{user}@{f'[{host}]' if ':' in host else host}" + (f":{port}" if port else "")
        if sslmode := options.get("sslmode"):
            query["sslmode"] = sslmode
    uri = f"postgresql://{netloc}/{database}"
    return f"{uri}?{urlencode(query, safe='/')}" if query else uri


def terms_array_literal(terms: Sequence[str]) -> str:
    """``ARRAY['a','b']::text[]``: analysed terms for the SQL functions."""
    quoted = ",".join("'" + term.replace("'", "''") + "'" for term in terms)
    return f"ARRAY[{quoted}]::text[]"
