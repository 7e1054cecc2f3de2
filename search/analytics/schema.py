"""Names of the schemas the analytics migrations create."""

from __future__ import annotations

from typing import Final

SCHEMA: Final = "analytics"
PRIVATE_SCHEMA: Final = "analytics_private"
