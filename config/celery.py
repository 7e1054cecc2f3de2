"""Celery application, configured from Django settings (CELERY_*)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("docsearch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def queue_on_commit(task_name: str, *args: Any) -> None:
    """Queue the task called ``task_name`` once the current transaction commits.

    Services queue their tasks by name so that they need not import the task
    modules, which import the services: tasks depend on services, never the
    reverse. The name resolves to the registered task, so without a broker
    (``CELERY_TASK_ALWAYS_EAGER``) the task still runs in-process.
    """
    from django.db import transaction

    def send() -> None:
        if task_name not in app.tasks:
            # Outside a worker nothing has imported the apps' task modules
            # yet: autodiscover them now (a name still unknown is a KeyError,
            # never a message sent to a broker the app is not configured for).
            app.loader.import_default_modules()
        app.tasks[task_name].delay(*args)

    transaction.on_commit(send)
