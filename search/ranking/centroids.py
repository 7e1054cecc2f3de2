"""Mean directions of the collection's embeddings, read from the database and
kept per process for a few minutes.

Embedding models spread texts unevenly: every e5 vector shares a large
common component (unrelated texts sit at cosine 0.8), and texts of one
language share another. Means taken over the collection let search take
those components out (``semantic.with_language_shifts``, and
``search.related`` for related documents). Only documents every staff
member may see (no groups) are averaged, so a restricted document never
moves anyone's ranking.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from django.db import connection
from pgvector import Vector

from config.routers import read_connection

if TYPE_CHECKING:
    from collections.abc import Callable

#: Fewest chunks of a language group whose mean is trusted as that
#: language's direction (fewer, and the mean is one document's topic).
MIN_LANGUAGE_CHUNKS: Final = 50
#: Fewest documents whose mean is trusted as the collection's.
MIN_DOCUMENTS: Final = 20
#: Seconds a process keeps a mean before reading it again.
TTL_S: Final = 300.0

_PUBLIC: Final = "NOT EXISTS (SELECT 1 FROM documents_document_groups g WHERE g.document_id = d.id)"
_cache: dict[tuple[str, ...], tuple[float, Any]] = {}
_lock = threading.Lock()


def _cached(key: tuple[str, ...], compute: Callable[[], Any]) -> Any:
    key = (str(connection.settings_dict["NAME"]), *key)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
    if hit is not None and now - hit[0] < TTL_S:
        return hit[1]
    value = compute()
    with _lock:
        _cache[key] = (now, value)
    return value


def language_centroids(model: str, dimensions: int) -> dict[bool, np.ndarray]:
    """Mean chunk vector of English documents (True) and of the rest (False);
    a group with fewer than ``MIN_LANGUAGE_CHUNKS`` chunks is left out."""

    def compute() -> dict[bool, np.ndarray]:
        with read_connection().cursor() as cursor:
            cursor.execute(
                f"""
                SELECT d.language = 'en', avg(c.embedding::vector({int(dimensions)})), count(*)
                FROM documents_chunk c JOIN documents_document d ON d.id = c.document_id
                WHERE c.embedding_model = %s AND vector_dims(c.embedding) = {int(dimensions)}
                  AND {_PUBLIC}
                GROUP BY 1
                """,
                [model],
            )
            rows = cursor.fetchall()
        return {
            bool(english): _as_array(mean)
            for english, mean, count in rows
            if count >= MIN_LANGUAGE_CHUNKS
        }

    result: dict[bool, np.ndarray] = _cached(("languages", model, str(dimensions)), compute)
    return result


def collection_mean(model: str, dimensions: int) -> np.ndarray | None:
    """Mean document embedding of the model's documents (None below ``MIN_DOCUMENTS``)."""

    def compute() -> np.ndarray | None:
        with read_connection().cursor() as cursor:
            cursor.execute(
                f"""
                SELECT avg(d.embedding::vector({int(dimensions)})), count(*)
                FROM documents_document d
                WHERE d.embedding_model = %s AND vector_dims(d.embedding) = {int(dimensions)}
                  AND {_PUBLIC}
                """,
                [model],
            )
            mean, count = cursor.fetchone()
        return _as_array(mean) if mean is not None and count >= MIN_DOCUMENTS else None

    result: np.ndarray | None = _cached(("documents", model, str(dimensions)), compute)
    return result


def forget() -> None:
    """Read every mean again at its next use (tests, after a bulk import)."""
    with _lock:
        _cache.clear()


def _as_array(value: Any) -> np.ndarray:
    """A pgvector value as numpy, whether the driver decoded it or not."""
    vector = value if isinstance(value, Vector) else Vector.from_text(str(value))
    return np.asarray(vector.to_numpy(), dtype=np.float32)
