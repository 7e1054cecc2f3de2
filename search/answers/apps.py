from __future__ import annotations

from django.apps import AppConfig


class AnswersConfig(AppConfig):
    """Answers with citations: a question answered from the user's documents."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "search.answers"
    label = "answers"
    verbose_name = "Answers"
