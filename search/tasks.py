"""Celery tasks of the search app: thin wrappers that take ids and call a service."""

from __future__ import annotations

from celery import shared_task

from search.models import ClusteringRun


@shared_task(ignore_result=True, acks_late=True, soft_time_limit=1800, time_limit=1900)
def clustering_run(run_id: int) -> None:
    """Execute a queued clustering run; failures are recorded on the run."""
    from search.clustering_services import clustering_run_execute

    if not ClusteringRun.objects.filter(pk=run_id).exists():
        return  # Deleted before the worker ran.
    clustering_run_execute(run_id=run_id)
