"""The search settings the SQL functions read (``analytics_private.search_settings``).

What the SQL cannot know (the embedding model, its per-language weights,
fusion, candidates) is recorded by :func:`sync_search_settings`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from psycopg.types.json import Jsonb

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
    #: Near-copy cosine per embedding model (related documents flag copies).
    duplicate_thresholds: dict[str, float]


def current_search_settings(*, strict: bool = True) -> SearchSettings:
    """The settings as the app reads them now (loads the embedding provider).

    With ``strict=False`` a provider that cannot be loaded leaves the model
    and its weights unset instead of raising (migrations use this).
    """
    from documents.selectors import search_embedder

    model = dimensions = weight_en = weight_ko = None
    try:
        embedder = search_embedder()
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
        duplicate_thresholds=_duplicate_thresholds(),
    )


def _duplicate_thresholds() -> dict[str, float]:
    """Every model that indexes documents, with its near-copy cosine."""
    from documents.embeddings import duplicate_threshold_for
    from documents.selectors import embedding_coverage

    try:
        models = embedding_coverage()
    except DatabaseError:  # No documents table yet (a migration in progress).
        return {}
    return {model: duplicate_threshold_for(model) for model in sorted(models)}


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
            [_parameter(getattr(values, f)) for f in fields],
        )
    return values


def recorded_search_settings() -> SearchSettings | None:
    """The settings the SQL functions use now, or None before the first sync."""
    fields = list(SearchSettings.__dataclass_fields__)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(fields)} FROM {PRIVATE_SCHEMA}.search_settings")
        row = cursor.fetchone()
    if row is None:
        return None
    # Django's connections load jsonb as text (its JSONField decodes it).
    return SearchSettings(
        *(
            json.loads(v) if f == "duplicate_thresholds" else v
            for f, v in zip(fields, row, strict=True)
        )
    )


def _parameter(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict) else value
