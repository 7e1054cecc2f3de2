"""Signals the documents app sends; other apps connect to them in ``ready()``."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent (``model=`` its name) when a re-embed has just brought every document
#: to the configured embedding model, so semantic search now uses it.
search_model_changed = Signal()
