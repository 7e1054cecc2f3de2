"""Clustering runs: queue, execute and reap them, and store what they find (services).

The math is in :mod:`search.clustering.algorithms` and the reads that feed it are in
:mod:`search.clustering.selectors`; this module drives a run and stores its
results. A run never holds locks that block editing or search: it reads the
embeddings in one query, computes in numpy, reports progress in short
statements of its own and writes all results in one short transaction at
the end.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from django.db import transaction
from django.utils import timezone

from config.celery import queue_on_commit
from documents.models import Document
from search.clustering.algorithms import (
    NOISE,
    ClusteringResult,
    class_tfidf_terms,
    cluster_vectors,
    label_from_terms,
    project_2d,
    surface_forms,
)
from search.clustering.models import Cluster, ClusteringRun, ClusterMembership
from search.clustering.selectors import ClusteringError, ClusteringInputs, clustering_inputs

logger = logging.getLogger(__name__)

#: The run's task, by name (see ``config.celery.queue_on_commit``); the name it
#: had before clustering became an app of its own, so that runs queued before
#: an upgrade still execute after it.
CLUSTERING_TASK: Final = "search.tasks.clustering_run"
#: Seconds a clustering run may take: past the soft limit the run fails with
#: a message; past the hard one the worker process is killed.
CLUSTERING_SOFT_TIME_LIMIT: Final = 1800
CLUSTERING_TIME_LIMIT: Final = 1900
#: Texts handed to the morphological analyser per call.
ANALYSIS_BATCH: Final = 256
#: Terms stored per cluster; the label shows the first three.
TERMS_PER_CLUSTER: Final = 10
#: Members (nearest the centroid) read to turn stems back into words.
SURFACE_SAMPLE: Final = 200


# --- Services -----------------------------------------------------------------


@transaction.atomic
def clustering_run_queue(*, run: ClusteringRun) -> ClusteringRun:
    """Validate and save a new run, and queue it once the transaction commits."""
    run.status = ClusteringRun.Status.QUEUED
    run.progress = 0
    run.full_clean()
    run.save()
    queue_on_commit(CLUSTERING_TASK, run.pk)
    return run


def clustering_run_execute(*, run_id: int) -> None:
    """Cluster the run's scope and store the clusters; record any failure.

    Idempotent: a finished run is left alone and a re-delivered one replaces
    what an interrupted attempt stored. Never raises for bad input: the run
    ends ``failed`` with a message saying why.
    """
    run = ClusteringRun.objects.filter(pk=run_id).first()
    if run is None or run.status == ClusteringRun.Status.DONE:
        return
    _update(
        run_id,
        status=ClusteringRun.Status.RUNNING,
        progress=1,
        error="",
        message="Reading embeddings",
    )
    try:
        _execute(run)
    except ClusteringError as exc:
        _fail(run_id, str(exc))
    except Exception as exc:  # Includes Celery's SoftTimeLimitExceeded.
        logger.exception("Clustering run %s failed", run_id)
        _fail(run_id, f"Clustering failed unexpectedly: {type(exc).__name__}: {exc}")


def _execute(run: ClusteringRun) -> None:
    inputs = clustering_inputs(run=run)
    _update(
        run.pk,
        progress=10,
        document_count=len(inputs.document_ids),
        skipped_count=inputs.skipped,
        message=f"Clustering {len(inputs.document_ids)} documents",
    )
    tried = max(1, (run.k_max or 0) - (run.k_min or 0) + 1)
    result = cluster_vectors(
        inputs.vectors,
        algorithm=run.algorithm,
        k=run.k,
        k_min=run.k_min,
        k_max=run.k_max,
        min_cluster_size=run.min_cluster_size,
        progress=lambda step, note: _update(run.pk, progress=10 + 50 * step // tried, message=note),
    )
    if result.k == 0:
        raise ClusteringError(
            "HDBSCAN found no dense cluster: every document is an outlier. Lower the "
            "minimum cluster size or use k-means."
        )
    _update(run.pk, progress=60, message="Projecting to 2-D")
    points, centre_points = project_2d(inputs.vectors, result.centroids)
    _update(run.pk, progress=70, message="Labelling clusters")
    terms = class_tfidf_terms(
        inputs.texts, result.labels, batch_analyzer=_analyze_batched, top_n=TERMS_PER_CLUSTER
    )
    terms = _readable(terms, inputs.texts, result)
    _update(run.pk, progress=90, message="Saving")
    _store(run, inputs, result, terms, points, centre_points)


def _readable(
    terms: dict[int, list[tuple[str, float]]], texts: list[str], result: ClusteringResult
) -> dict[int, list[tuple[str, float]]]:
    """Terms as words the documents use (stems back to their commonest word)."""
    from documents.analysis import analyze

    nearest = result.representatives(n=SURFACE_SAMPLE)
    readable = {}
    for number, scored in terms.items():
        sample = [texts[i] for i in nearest[number]]
        words = surface_forms([t for t, _ in scored], sample, analyzer=analyze)
        readable[number] = [(words[t], score) for t, score in scored]
    return readable


def _analyze_batched(texts: Sequence[str]) -> list[list[str]]:
    from documents.analysis import analyze_many

    terms: list[list[str]] = []
    for start in range(0, len(texts), ANALYSIS_BATCH):
        terms.extend(analyze_many(texts[start : start + ANALYSIS_BATCH]))
    return terms


def _store(
    run: ClusteringRun,
    inputs: ClusteringInputs,
    result: ClusteringResult,
    terms: dict[int, list[tuple[str, float]]],
    points: np.ndarray,
    centre_points: np.ndarray | None,
) -> None:
    """Replace the run's clusters and memberships in one short transaction."""
    ids = inputs.document_ids
    representatives = result.representatives()
    with transaction.atomic():
        ClusterMembership.objects.filter(run_id=run.pk).delete()
        Cluster.objects.filter(run_id=run.pk).delete()
        clusters = Cluster.objects.bulk_create(
            [
                Cluster(
                    run_id=run.pk,
                    number=number,
                    size=size,
                    cohesion=cohesion,
                    label=label_from_terms(terms.get(number, []))[:200],
                    terms=[term for term, _ in terms.get(number, [])],
                    representatives=[ids[i] for i in representatives[number]],
                    x=_float(centre_points, number, 0),
                    y=_float(centre_points, number, 1),
                )
                for number, (size, cohesion) in enumerate(
                    zip(result.sizes(), result.cohesion(), strict=True)
                )
            ]
        )
        by_number = {cluster.number: cluster.pk for cluster in clusters}
        # Documents deleted while the run computed are left out.
        existing = set(Document.objects.filter(pk__in=ids).values_list("pk", flat=True))
        ClusterMembership.objects.bulk_create(
            [
                ClusterMembership(
                    run_id=run.pk,
                    document_id=doc_id,
                    cluster_id=by_number.get(int(label)) if label != NOISE else None,
                    distance_to_centroid=None if np.isnan(dist) else float(dist),
                    x=float(point[0]),
                    y=float(point[1]),
                )
                for doc_id, label, dist, point in zip(
                    ids, result.labels, result.distances, points, strict=True
                )
                if doc_id in existing
            ],
            batch_size=2000,
        )
        _update(
            run.pk,
            status=ClusteringRun.Status.DONE,
            progress=100,
            silhouette=result.silhouette,
            silhouette_by_k={str(k): round(v, 4) for k, v in result.silhouettes.items()},
            projection_computed=True,
            finished_at=timezone.now(),
            message=_summary(inputs, result),
        )


def _float(array: np.ndarray | None, row: int, column: int) -> float | None:
    return None if array is None else float(array[row, column])


def _summary(inputs: ClusteringInputs, result: ClusteringResult) -> str:
    parts = [f"{result.k} clusters of {len(inputs.document_ids)} documents."]
    if noise := int(np.count_nonzero(result.labels == NOISE)):
        parts.append(f"{noise} outliers belong to no cluster.")
    parts.extend(inputs.notes)
    return " ".join(parts)


def _update(run_id: int, **fields: Any) -> None:
    """Write progress in a statement of its own (autocommit outside atomic)."""
    ClusteringRun.objects.filter(pk=run_id).update(**fields, updated_at=timezone.now())


def clustering_runs_reap() -> int:
    """Fail the running runs whose worker is gone; return how many.

    A run that has written no progress for longer than the task's hard time
    limit cannot still be running: its worker was killed (time limit, out of
    memory, a host that went away) and the run would show "running" forever.
    If the broker delivers the task again, the run simply starts over.
    """
    silent_since = timezone.now() - datetime.timedelta(seconds=CLUSTERING_TIME_LIMIT)
    stale = ClusteringRun.objects.filter(
        status=ClusteringRun.Status.RUNNING, updated_at__lt=silent_since
    )
    reaped = stale.update(
        status=ClusteringRun.Status.FAILED,
        error=(
            "The worker running this clustering stopped without finishing (no progress "
            f"for over {CLUSTERING_TIME_LIMIT // 60} minutes). Start a new run; for a "
            "large collection, narrow the scope or use k-means with a fixed k."
        ),
        message="",
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
    if reaped:
        logger.warning("Marked %d stalled clustering run(s) failed", reaped)
    return reaped


def _fail(run_id: int, error: str) -> None:
    _update(
        run_id,
        status=ClusteringRun.Status.FAILED,
        error=error[:2000],
        message="",
        finished_at=timezone.now(),
    )
