"""The analysts' SQL surface: the ``analytics`` schema's functions and roles.

Analysts query PostgreSQL directly (psql, a BI tool, a notebook) through the
``analytics`` schema: views created by migrations, and search functions
whose SQL is *rendered by this package from the app's own ranking SQL*
(:mod:`search.ranking.backends.sql` and :mod:`search.related`), so that
``analytics.keyword_search`` ranks exactly as the keyword backend does.

The rendered SQL is installed after every ``migrate`` by
:func:`install_functions` (a ``post_migrate`` handler), so the functions
always run the ranking SQL of the installed code; the tests compare the
installed functions with a fresh rendering.

What the SQL cannot know (the embedding model, its per-language weights,
fusion, candidates) lives in ``analytics_private.search_settings``, written
by :func:`sync_search_settings`. Who sees which document, and the roles
themselves: see :func:`analyst_role_create` and ``docs/analysts.md``.

Modules: :mod:`~search.analytics.rendering` (the app's SQL as function
statements), :mod:`~search.analytics.functions` (the functions and their
installing SQL), :mod:`~search.analytics.install` (installing them after
``migrate``), :mod:`~search.analytics.search_settings` and
:mod:`~search.analytics.roles`.
"""

from __future__ import annotations

from search.analytics.functions import (
    DROP_FUNCTIONS_SQL,
    RESULT_TYPES,
    SqlFunction,
    analytics_functions,
    functions_sql,
)
from search.analytics.install import install_functions
from search.analytics.rendering import (
    DIMS_TOKEN,
    hybrid_statement,
    keyword_statement,
    related_statement,
    semantic_statement,
)
from search.analytics.roles import (
    DEFAULT_CONNECTION_LIMIT,
    DEFAULT_STATEMENT_TIMEOUT,
    AnalystRoleError,
    analyst_dsn,
    analyst_role_create,
    analyst_role_drop,
    terms_array_literal,
)
from search.analytics.schema import PRIVATE_SCHEMA, SCHEMA
from search.analytics.search_settings import (
    SearchSettings,
    current_search_settings,
    recorded_search_settings,
    sync_search_settings,
)

__all__ = [
    "DEFAULT_CONNECTION_LIMIT",
    "DEFAULT_STATEMENT_TIMEOUT",
    "DIMS_TOKEN",
    "DROP_FUNCTIONS_SQL",
    "PRIVATE_SCHEMA",
    "RESULT_TYPES",
    "SCHEMA",
    "AnalystRoleError",
    "SearchSettings",
    "SqlFunction",
    "analyst_dsn",
    "analyst_role_create",
    "analyst_role_drop",
    "analytics_functions",
    "current_search_settings",
    "functions_sql",
    "hybrid_statement",
    "install_functions",
    "keyword_statement",
    "recorded_search_settings",
    "related_statement",
    "semantic_statement",
    "sync_search_settings",
    "terms_array_literal",
]
