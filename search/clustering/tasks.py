"""Celery tasks of the clustering report: thin wrappers that take ids and call a service."""

from __future__ import annotations

from celery import shared_task

from search.clustering.models import ClusteringRun
from search.clustering.services import (
    CLUSTERING_SOFT_TIME_LIMIT,
    CLUSTERING_TASK,
    CLUSTERING_TIME_LIMIT,
    clustering_run_execute,
)


@shared_task(
    name=CLUSTERING_TASK,
    ignore_result=True,
    acks_late=True,
    soft_time_limit=CLUSTERING_SOFT_TIME_LIMIT,
    time_limit=CLUSTERING_TIME_LIMIT,
)
def clustering_run(run_id: int) -> None:
    """Execute a queued clustering run; failures are recorded on the run."""
    if not ClusteringRun.objects.filter(pk=run_id).exists():
        return  # Deleted before the worker ran.
    clustering_run_execute(run_id=run_id)
