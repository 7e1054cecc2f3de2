"""Search backends: one contract, one class per mode, and a registry."""

from __future__ import annotations

from search.ranking.backends.base import (
    BackendResult,
    SearchBackend,
    SearchFilters,
    SearchHit,
    SearchMode,
)
from search.ranking.backends.hybrid import HybridBackend
from search.ranking.backends.keyword import KeywordBackend
from search.ranking.backends.semantic import SemanticBackend

_BACKENDS: dict[SearchMode, type[SearchBackend]] = {
    SearchMode.KEYWORD: KeywordBackend,
    SearchMode.SEMANTIC: SemanticBackend,
    SearchMode.HYBRID: HybridBackend,
}


def get_search_backend(mode: SearchMode | str) -> SearchBackend:
    """Return the backend for ``mode`` (raises ValueError for unknown modes)."""
    return _BACKENDS[SearchMode(mode)]()


__all__ = [
    "BackendResult",
    "SearchBackend",
    "SearchFilters",
    "SearchHit",
    "SearchMode",
    "get_search_backend",
]
