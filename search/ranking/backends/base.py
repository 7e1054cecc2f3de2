"""The contract every search mode implements, and the values it trades in."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datetime

    from django.db.models import QuerySet

    from documents.models import Document
    from search.ranking.query import ParsedQuery


class SearchMode(enum.StrEnum):
    KEYWORD = "keyword"
    SEMANTIC = "semantic"
    HYBRID = "hybrid"


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Narrowing chosen by the user; empty means no narrowing."""

    tags: tuple[str, ...] = ()
    source_types: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    owners: tuple[int, ...] = ()
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None
    document_ids: tuple[int, ...] = ()

    def apply(self, queryset: QuerySet[Document]) -> QuerySet[Document]:
        """Return ``queryset`` narrowed by these filters."""
        if self.tags:
            queryset = queryset.filter(tags__overlap=list(self.tags))
        if self.source_types:
            queryset = queryset.filter(source_type__in=self.source_types)
        if self.languages:
            queryset = queryset.filter(language__in=self.languages)
        if self.owners:
            queryset = queryset.filter(owner_id__in=self.owners)
        if self.date_from:
            queryset = queryset.filter(updated_at__date__gte=self.date_from)
        if self.date_to:
            queryset = queryset.filter(updated_at__date__lte=self.date_to)
        if self.document_ids:
            queryset = queryset.filter(pk__in=self.document_ids)
        return queryset

    @property
    def is_empty(self) -> bool:
        return not any(
            (
                self.tags,
                self.source_types,
                self.languages,
                self.owners,
                self.date_from,
                self.date_to,
                self.document_ids,
            )
        )

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly form, for the query log."""
        data: dict[str, object] = {}
        for name in ("tags", "source_types", "languages", "owners", "document_ids"):
            if value := getattr(self, name):
                data[name] = list(value)
        for name in ("date_from", "date_to"):
            if value := getattr(self, name):
                data[name] = value.isoformat()
        return data


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One document in a ranking, with why it ranked where it did."""

    document_id: int
    score: float
    rank: int
    keyword_rank: int | None = None
    keyword_score: float | None = None
    semantic_rank: int | None = None
    semantic_score: float | None = None
    #: The best-matching chunk (semantic) if known; keyword picks its own.
    chunk_id: int | None = None
    #: Chunks of the document among the candidates (semantic leg).
    chunk_matches: int = 0
    #: Place and score given by the cross-encoder, when results were re-ranked.
    rerank_rank: int | None = None
    rerank_score: float | None = None


@dataclass(slots=True)
class BackendResult:
    hits: list[SearchHit]
    #: Documents that matched in all (keyword), or candidates ranked (others).
    total: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class SearchBackend(ABC):
    """Ranks the documents of a queryset for a parsed query."""

    mode: SearchMode

    @abstractmethod
    def search(
        self, query: ParsedQuery, *, queryset: QuerySet[Document], limit: int
    ) -> BackendResult:
        """Return at most ``limit`` hits, best first, drawn only from ``queryset``."""
