"""Reads of documents: one document as a user may see it, and which embedding
model indexes the collection (and so which one semantic search uses)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from django.db.models import Count

from documents.embeddings import EmbeddingProvider, embedder_for_model, get_embedder
from documents.models import Chunk, Document

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.auth.models import User as AuthUser
    from django.db.models import QuerySet

    User = AuthUser | AnonymousUser

logger = logging.getLogger(__name__)


def document_detail(*, user: User | None, document_id: int) -> Document | None:
    """A document the user may see, or None (shown as 404: no existence leak)."""
    return (
        Document.objects.visible_to(user)
        .select_related("owner")
        .prefetch_related("groups")
        .filter(pk=document_id)
        .first()
    )


def document_chunks(document: Document) -> QuerySet[Chunk]:
    """The document's passages: the chunks of its live index, in order."""
    return (
        document.chunks.filter(embedding_model=document.embedding_model)
        .defer("embedding", "search_vector")
        .order_by("position")
    )


# --- Which model semantic search uses -----------------------------------------

#: Seconds a process trusts its answer to "which model does search use": a
#: cut-over reaches every process this long after the last document is done.
SEARCH_MODEL_TTL: Final = 10.0


@dataclass(frozen=True, slots=True)
class ModelCoverage:
    """Documents indexed by one embedding model."""

    model: str
    #: Documents whose live index is this model's.
    documents: int
    #: Documents with a complete index of this model waiting for the cut-over.
    staged: int
    #: The model the settings name: what every document is (re-)embedded with.
    configured: bool
    #: The model whose chunks semantic search compares queries with now.
    searched: bool

    @property
    def covered(self) -> int:
        return self.documents + self.staged


def embedding_coverage() -> dict[str, tuple[int, int]]:
    """Per embedding model: documents it indexes live, and staged for a cut-over."""

    def counts(field: str) -> dict[str, int]:
        rows = (
            Document.objects.exclude(**{field: ""})
            .order_by()
            .values_list(field)
            .annotate(n=Count("pk"))
        )
        return {model: n for model, n in rows}

    live, staged = counts("embedding_model"), counts("staged_model")
    return {model: (live.get(model, 0), staged.get(model, 0)) for model in {*live, *staged}}


def _search_model(configured: str) -> str:
    """The configured model once it indexes every document; until then the
    earlier model that indexes most of them (a re-embed is under way).

    A document whose re-embed failed keeps its old index and holds the
    cut-over back (the admin shows it as waiting, failed): fix or delete it,
    or cut over anyway with ``reembed --cut-over``.
    """
    waiting = (
        Document.objects.exclude(embedding_model__in=["", configured])
        .exclude(staged_model=configured)
        .order_by()
        .values_list("embedding_model")
        .annotate(n=Count("pk"))
        .order_by("-n", "embedding_model")
        .first()
    )
    return configured if waiting is None else str(waiting[0])


_cache_lock = threading.Lock()
_cached: tuple[str, str, float] | None = None  # (configured, searched, expires)


def search_model_name(*, fresh: bool = False) -> str:
    """The model semantic search uses now (see :func:`_search_model`).

    Cached for ``SEARCH_MODEL_TTL`` seconds per process, unless ``fresh``.
    """
    global _cached
    configured = get_embedder().name
    now = time.monotonic()
    with _cache_lock:
        cached = _cached
    if not fresh and cached is not None and cached[0] == configured and cached[2] > now:
        return cached[1]
    searched = _search_model(configured)
    with _cache_lock:
        _cached = (configured, searched, now + SEARCH_MODEL_TTL)
    return searched


def forget_search_model() -> None:
    """Drop the cached answer (after a cut-over in this process, and in tests)."""
    global _cached
    with _cache_lock:
        _cached = None


def search_embedder() -> EmbeddingProvider:
    """The provider that embeds queries for the chunks search compares them with.

    Never another model's vectors: while a collection is re-embedded with a
    new model, queries are embedded by the old one and compared with its
    chunks, until the new model covers the collection.
    """
    name = search_model_name()
    try:
        return embedder_for_model(name)
    except Exception:
        # The old model cannot be loaded here (uninstalled, no API key):
        # search what the new one covers already rather than fail.
        logger.exception("Cannot load %s for searching its chunks; using the configured", name)
        return get_embedder()


def model_coverage() -> list[ModelCoverage]:
    """Documents per embedding model, the configured and the searched marked."""
    configured, searched = get_embedder().name, search_model_name(fresh=True)
    counts = embedding_coverage()
    counts.setdefault(configured, (0, 0))
    return [
        ModelCoverage(
            model=model,
            documents=live,
            staged=staged,
            configured=model == configured,
            searched=model == searched,
        )
        for model, (live, staged) in sorted(
            counts.items(), key=lambda item: (-sum(item[1]), item[0])
        )
    ]
