"""Writes of the search app: the query log and the result-click log."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from search.models import SearchQueryLog, SearchResultClick

if TYPE_CHECKING:
    from collections.abc import Mapping

    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    User = AbstractBaseUser | AnonymousUser

logger = logging.getLogger(__name__)


def _user_or_none(user: User | None) -> AbstractBaseUser | None:
    if user is None or not user.is_authenticated:
        return None
    return user  # type: ignore[return-value]


def search_log_create(
    *,
    user: User | None,
    query: str,
    mode: str,
    filters: Mapping[str, object],
    result_count: int,
    latency_ms: float,
    source: str,
) -> SearchQueryLog:
    """Record one search as it was run, for the analysts."""
    return SearchQueryLog.objects.create(
        user=_user_or_none(user),
        query=query,
        mode=str(mode),
        filters=dict(filters),
        result_count=max(result_count, 0),
        latency_ms=max(latency_ms, 0.0),
        source=source,
    )


def search_click_create(
    *, user: User | None, search_id: int, document_id: int, rank: int | None
) -> SearchResultClick | None:
    """Record that ``user`` opened a result of one of their own searches.

    Should be called only once the document is known to be visible to
    ``user``. A search id that is not the user's (stale or forged link)
    records nothing, so one user's clicks never attach to another's search.
    """
    owner = _user_or_none(user)
    search = (
        SearchQueryLog.objects.filter(pk=search_id, user=owner).first()
        if owner is not None
        else None
    )
    if search is None:
        logger.debug("Ignored a click on document %s from search %s", document_id, search_id)
        return None
    return SearchResultClick.objects.create(
        search=search, user=owner, document_id=document_id, rank=rank
    )
