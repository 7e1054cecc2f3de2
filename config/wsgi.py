"""WSGI entry point (gunicorn config.wsgi; runserver uses it too)."""

from __future__ import annotations

import logging
import os
import threading

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()


def _warm_up() -> None:
    """Load the Korean analyser and the embedding models before the first query.

    They take seconds to load; without this the first search after a start
    pays for them.
    """
    try:
        from documents.analysis import analyze
        from documents.embeddings import get_companion, get_embedder

        analyze("검색 준비 warm-up")
        get_embedder().embed_query("warm-up")
        if (companion := get_companion()) is not None:
            companion.embed_query("warm-up")
    except Exception:  # A failed warm-up only costs the first query time.
        logging.getLogger(__name__).exception("Warm-up failed")


threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()
