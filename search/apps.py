from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SearchConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "search"

    def ready(self) -> None:
        from search.analytics.install import install_after_migrate

        # The analysts' functions are rendered from the ranking SQL that
        # runs, so every migrate installs them afresh when they changed.
        post_migrate.connect(
            install_after_migrate, sender=self, dispatch_uid="search_install_analytics"
        )
