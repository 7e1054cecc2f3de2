"""The search settings the SQL functions read (``analytics_private.search_settings``).

What the SQL cannot know (the embedding model, its per-language weights,
fusion, candidates) is recorded by :func:`sync_search_settings`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection

from search.analytics.schema import PRIVATE_SCHEMA

# The package's logger, as before it was split into modules.
logger = logging.getLogger("search.analytics")


@dataclass(frozen=True, slots=True)
class SearchSettings:
    """What the SQL functions need from the app's configuration."""

    embedding_model: str | None
    embedding_dimensions: int | None
    semantic_weight_en: float | None
    semantic_weight_ko: float | None
    semantic_weight_override: float | None
    fusion: str
    candidates: int
    hnsw_ef_search: int


def current_search_settings(*, strict: bool = True) -> SearchSettings:
    """The settings as the app reads them now (loads the embedding provider).

    With ``strict=False`` a provider that cannot be loaded leaves the model
    and its weights unset instead of raising (migrations use this).
    """
    from documents.embeddings import get_embedder

    model = dimensions = weight_en = weight_ko = None
    try:
        embedder = get_embedder()
    except Exception:
        if strict:
            raise
        logger.warning(
            "No embedding provider: analytics settings recorded without a model", exc_info=True
        )
    else:
        model, dimensions = embedder.name, int(embedder.dimensions)
        weight_en = float(embedder.semantic_weights.get("en", 0.0))
        weight_ko = float(embedder.semantic_weights.get("ko", 0.0))
    override = settings.SEARCH_SEMANTIC_WEIGHT
    return SearchSettings(
        embedding_model=model,
        embedding_dimensions=dimensions,
        semantic_weight_en=weight_en,
        semantic_weight_ko=weight_ko,
        semantic_weight_override=None if override is None else float(override),
        fusion=str(settings.SEARCH_FUSION),
        candidates=int(settings.SEARCH_CANDIDATES),
        hnsw_ef_search=int(settings.SEARCH_HNSW_EF_SEARCH),
    )


def sync_search_settings(*, strict: bool = True, using: Any = None) -> SearchSettings:
    """Record the current settings in ``analytics_private.search_settings``."""
    values = current_search_settings(strict=strict)
    fields = list(SearchSettings.__dataclass_fields__)
    with (using or connection).cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {PRIVATE_SCHEMA}.search_settings (id, {', '.join(fields)}, updated_at)"
            f" VALUES (true, {', '.join(['%s'] * len(fields))}, now())"
            f" ON CONFLICT (id) DO UPDATE SET "
            + ", ".join(f"{f} = EXCLUDED.{f}" for f in [*fields, "updated_at"]),
            [getattr(values, f) for f in fields],
        )
    return values


def recorded_search_settings() -> SearchSettings | None:
    """The settings the SQL functions use now, or None before the first sync."""
    fields = list(SearchSettings.__dataclass_fields__)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(fields)} FROM {PRIVATE_SCHEMA}.search_settings")
        row = cursor.fetchone()
    return None if row is None else SearchSettings(*row)
