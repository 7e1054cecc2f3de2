"""Rate limits shared by the pages and the API."""

from __future__ import annotations

from typing import Final

from django_ratelimit.decorators import ratelimit

from config.middleware import setting_rate

#: One budget per user for searching and asking, page and API together
#: (SEARCH_RATE_LIMIT).
search_rate_limit: Final = ratelimit(
    group="search", key="user_or_ip", rate=setting_rate("SEARCH_RATE_LIMIT")
)
