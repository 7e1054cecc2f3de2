from __future__ import annotations

from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "documents"

    def ready(self) -> None:
        from documents import signals  # noqa: F401  (connects the receivers)
