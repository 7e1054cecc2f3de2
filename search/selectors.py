"""Reads of the search app's own records: API tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from search.models import ApiToken

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.auth.models import User as AuthUser

    User = AuthUser | AnonymousUser


def api_tokens_of(*, user: User | None) -> list[ApiToken]:
    """The user's own API tokens, newest first."""
    if user is None or not user.is_authenticated:
        return []
    return list(ApiToken.objects.filter(user_id=user.pk).order_by("-created_at", "-pk"))
