from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _record_search_model(**kwargs: Any) -> None:
    from search.analytics import sync_search_settings

    sync_search_settings(strict=False)


class SearchConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "search"

    def ready(self) -> None:
        from documents.signals import search_model_changed
        from search.analytics.install import install_after_migrate

        # The analysts' functions are rendered from the ranking SQL that
        # runs, so every migrate installs them afresh when they changed.
        post_migrate.connect(
            install_after_migrate, sender=self, dispatch_uid="search_install_analytics"
        )
        # Their semantic functions search the model the app searches: after
        # a cut-over to a new model, record it.
        search_model_changed.connect(_record_search_model, dispatch_uid="search_record_model")
