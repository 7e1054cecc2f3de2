"""Installing the analytics functions after every ``migrate``.

The functions are derived from the app's ranking SQL, like views from
tables, so they are not frozen into migrations: a ``post_migrate`` handler
(:func:`install_after_migrate`, connected by the search app) renders them
from the code that runs and installs them in one transaction, when what is
installed differs from that rendering. Analysts never see a half-installed
schema: the old functions stay visible until the new ones commit.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from search.analytics.functions import analytics_functions, functions_sql
from search.analytics.schema import PRIVATE_SCHEMA, SCHEMA
from search.analytics.search_settings import sync_search_settings

logger = logging.getLogger(__name__)

_INSTALLED_TABLE = f"{PRIVATE_SCHEMA}.installed_functions"


def install_functions(*, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Install the rendered functions unless they are installed already.

    Returns whether anything was (re)installed. Idempotent and safe to run
    from several processes at once (an advisory lock serialises them).
    """
    statements = functions_sql()
    digest = hashlib.sha256("\n".join(statements).encode("utf-8")).hexdigest()
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [_INSTALLED_TABLE])
        cursor.execute(
            f"SELECT (SELECT digest FROM {_INSTALLED_TABLE}),"
            " (SELECT count(*) FROM pg_proc WHERE pronamespace = %s::regnamespace)",
            [SCHEMA],
        )
        installed_digest, installed_count = cursor.fetchone()
        if installed_digest == digest and installed_count == len(analytics_functions()):
            return False
        for statement in statements:
            cursor.execute(statement)
        cursor.execute(
            f"INSERT INTO {_INSTALLED_TABLE} (id, digest, installed_at) VALUES (true, %s, now())"
            " ON CONFLICT (id) DO UPDATE SET digest = EXCLUDED.digest, installed_at = now()",
            [digest],
        )
    logger.info("Installed the %s schema's functions (%s)", SCHEMA, digest[:12])
    return True


def install_after_migrate(*, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """``post_migrate`` handler: functions and search settings, once the schema exists."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [_INSTALLED_TABLE])
        (exists,) = cursor.fetchone()
    if exists is None:
        return  # Migrated backwards (or only partly): nothing to install into.
    install_functions(using=using)
    sync_search_settings(strict=False, using=connections[using])
