"""Writes of the search app: the query log, the result-click log, API tokens."""

from __future__ import annotations

import datetime
import hashlib
import logging
import secrets
from typing import TYPE_CHECKING, Final

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from search.models import ApiToken, SearchQueryLog, SearchResultClick

if TYPE_CHECKING:
    from collections.abc import Mapping

    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)


def _user_or_none(user: User | AnonymousUser | None) -> User | None:
    if user is None or isinstance(user, AnonymousUser):
        return None
    return user


def search_log_create(
    *,
    user: User | AnonymousUser | None,
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
    *, user: User | AnonymousUser | None, search_id: int, document_id: int, rank: int | None
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


#: Tokens a user may hold at once (the admin and the command are not limited).
MAX_TOKENS_PER_USER: Final = 20
#: Every key starts with this, so a leaked key is recognisable (secret scanners).
API_KEY_PREFIX: Final = "dsk_"
#: ``last_used_at`` is written at most this often per token.
_LAST_USED_RESOLUTION: Final = datetime.timedelta(minutes=1)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def api_token_issue(token: ApiToken) -> str:
    """Give an unsaved ``token`` a new key, save it, and return the key.

    The key is returned only here: the database keeps its digest.
    """
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    token.prefix = key[: len(API_KEY_PREFIX) + 6]
    token.digest = _digest(key)
    token.save()
    logger.info("API token %s created for user %s", token.prefix, token.user_id)
    return key


def api_token_create(
    *, user: User, name: str, expires_at: datetime.datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token for ``user``; return it with its key (shown only now)."""
    token = ApiToken(user=user, name=name, expires_at=expires_at)
    return token, api_token_issue(token)


def api_token_authenticate(key: str) -> User | None:
    """The active user a valid, unexpired key belongs to, else None."""
    if not key.startswith(API_KEY_PREFIX) or len(key) > 200:
        return None
    token = ApiToken.objects.select_related("user").filter(digest=_digest(key)).first()
    if token is None or token.is_expired or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def api_token_delete(*, user: User, token_id: int) -> bool:
    """Delete one of ``user``'s own tokens; False if there is none by that id."""
    deleted, _ = ApiToken.objects.filter(pk=token_id, user=user).delete()
    if deleted:
        logger.info("API token %s deleted by user %s", token_id, user.pk)
    return bool(deleted)
