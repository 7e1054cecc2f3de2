"""Celery tasks of the search app: thin wrappers that take ids and call a service."""

from __future__ import annotations

from typing import Final

from celery import shared_task

from search.models import ClusteringRun

#: Seconds a clustering run may take: past the soft limit the run fails with
#: a message; past the hard one the worker process is killed.
CLUSTERING_SOFT_TIME_LIMIT: Final = 1800
CLUSTERING_TIME_LIMIT: Final = 1900


@shared_task(
    ignore_result=True,
    acks_late=True,
    soft_time_limit=CLUSTERING_SOFT_TIME_LIMIT,
    time_limit=CLUSTERING_TIME_LIMIT,
)
def clustering_run(run_id: int) -> None:
    """Execute a queued clustering run; failures are recorded on the run."""
    from search.clustering_services import clustering_run_execute

    if not ClusteringRun.objects.filter(pk=run_id).exists():
        return  # Deleted before the worker ran.
    clustering_run_execute(run_id=run_id)
