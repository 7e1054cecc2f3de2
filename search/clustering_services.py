"""Clustering runs: start and execute them (services), read reports (selectors).

The math is in :mod:`search.clustering`; this module feeds it from the
database and stores what it finds. A run never holds locks that block
editing or search: it reads the embeddings in one query, computes in numpy,
reports progress in short statements of its own and writes all results in
one short transaction at the end.

The selectors here serve the admin report. Runs cluster the whole scope
whoever started them; every *document* a selector hands to a page is
filtered by ``Document.objects.visible_to(user)``.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from django.db import connection, transaction
from django.db.models import Count, Func, IntegerField, Q, TextField, Value
from django.db.models.functions import Concat, Left
from django.utils import timezone

from documents.models import Document
from search.backends.sql import base_cte
from search.clustering import (
    NOISE,
    ClusteringResult,
    Drift,
    class_tfidf_terms,
    cluster_vectors,
    compare_memberships,
    label_from_terms,
    project_2d,
    surface_forms,
)
from search.models import Cluster, ClusteringRun, ClusterMembership
from search.tasks import CLUSTERING_TIME_LIMIT
from search.tasks import clustering_run as clustering_run_task

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.auth.models import User as AuthUser
    from django.db.models import QuerySet

    User = AuthUser | AnonymousUser

logger = logging.getLogger(__name__)

#: Characters of each document read for labels (title + start of the text).
LABEL_TEXT_CHARS: Final = 2000
#: Texts handed to the morphological analyser per call.
ANALYSIS_BATCH: Final = 256
#: Terms stored per cluster; the label shows the first three.
TERMS_PER_CLUSTER: Final = 10
#: Members (nearest the centroid) read to turn stems back into words.
SURFACE_SAMPLE: Final = 200


class ClusteringError(Exception):
    """A run cannot go ahead; the message is shown to the admin as is."""


# --- Services -----------------------------------------------------------------


@transaction.atomic
def clustering_run_queue(*, run: ClusteringRun) -> ClusteringRun:
    """Validate and save a new run, and queue it once the transaction commits."""
    run.status = ClusteringRun.Status.QUEUED
    run.progress = 0
    run.full_clean()
    run.save()
    transaction.on_commit(partial(clustering_run_task.delay, run.pk))
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
    from search.analysis import analyze

    nearest = result.representatives(n=SURFACE_SAMPLE)
    readable = {}
    for number, scored in terms.items():
        sample = [texts[i] for i in nearest[number]]
        words = surface_forms([t for t, _ in scored], sample, analyzer=analyze)
        readable[number] = [(words[t], score) for t, score in scored]
    return readable


def _analyze_batched(texts: Sequence[str]) -> list[list[str]]:
    from search.analysis import analyze_many

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


# --- Selectors: input -----------------------------------------------------------


@dataclass(slots=True)
class ClusteringInputs:
    document_ids: list[int]
    texts: list[str]
    vectors: np.ndarray
    model: str
    skipped: int
    notes: list[str] = field(default_factory=list)


def clustering_scope(*, run: ClusteringRun) -> QuerySet[Document]:
    """The documents a run covers (all of them, whoever started it)."""
    documents = Document.objects.all()
    match run.scope:
        case ClusteringRun.Scope.TAG:
            documents = documents.filter(tags__contains=[run.tag])
        case ClusteringRun.Scope.DATES:
            if run.date_from:
                documents = documents.filter(created_at__date__gte=run.date_from)
            if run.date_to:
                documents = documents.filter(created_at__date__lte=run.date_to)
    return documents


def clustering_inputs(*, run: ClusteringRun) -> ClusteringInputs:
    """Embeddings and label texts of the run's scope, or a ``ClusteringError``.

    One aggregate query checks the scope (empty, not embedded yet, several
    models); one read-only query then loads ids, texts and vectors.
    """
    scope = clustering_scope(run=run)
    model, skipped, notes = _choose_model(run, scope)
    rows = list(
        scope.filter(embedding_model=model, embedding__isnull=False)
        .order_by("pk")
        .values_list(
            "pk",
            Left(Concat("title", Value("\n"), "text", output_field=TextField()), LABEL_TEXT_CHARS),
            "embedding",
        )
    )
    _check_size(run, len(rows))
    try:
        vectors = np.asarray([row[2] for row in rows], dtype=np.float32)
    except ValueError:
        raise ClusteringError(
            f"Embeddings of model {model} have different sizes; re-embed the documents."
        ) from None
    return ClusteringInputs(
        document_ids=[row[0] for row in rows],
        texts=[row[1] for row in rows],
        vectors=vectors,
        model=model,
        skipped=skipped,
        notes=notes,
    )


def _choose_model(run: ClusteringRun, scope: QuerySet[Document]) -> tuple[str, int, list[str]]:
    """The embedding model to cluster, documents without an embedding, notes."""
    counts = {
        row["embedding_model"]: (row["total"], row["embedded"])
        for row in scope.order_by()
        .values("embedding_model")
        .annotate(total=Count("pk"), embedded=Count("pk", filter=Q(embedding__isnull=False)))
    }
    total = sum(t for t, _ in counts.values())
    embedded = {m: e for m, (_, e) in counts.items() if e}
    skipped = total - sum(embedded.values())
    if total == 0:
        raise ClusteringError(f"No documents in scope ({run.scope_description}).")
    if not embedded:
        raise ClusteringError(
            f"None of the {total} documents in scope has an embedding yet; "
            "wait until they are indexed."
        )
    listing = ", ".join(f"{m} ({n})" for m, n in sorted(embedded.items()))
    if run.embedding_model and run.embedding_model not in embedded:
        raise ClusteringError(
            f"No document in scope is embedded by {run.embedding_model}; "
            f"models in scope: {listing}."
        )
    if not run.embedding_model and len(embedded) > 1:
        raise ClusteringError(
            f"Documents in scope were embedded by {len(embedded)} models: {listing}. "
            "Vectors of different models cannot be compared; choose one model "
            "(re-embedding is probably in progress)."
        )
    model = run.embedding_model or next(iter(embedded))
    notes = []
    if skipped:
        notes.append(f"{skipped} documents without an embedding yet were left out.")
    if others := sum(n for m, n in embedded.items() if m != model):
        notes.append(f"{others} documents embedded by other models were left out.")
    return model, skipped, notes


def _check_size(run: ClusteringRun, n: int) -> None:
    wanted = {
        ClusteringRun.Algorithm.KMEANS: run.k or 2,
        ClusteringRun.Algorithm.AUTO: (run.k_min or 2) + 1,
        ClusteringRun.Algorithm.HDBSCAN: 2,
    }[ClusteringRun.Algorithm(run.algorithm)]
    if n < wanted:
        asked = (
            f"{run.k} clusters"
            if run.algorithm == ClusteringRun.Algorithm.KMEANS
            else f"k from {run.k_min}"
            if run.algorithm == ClusteringRun.Algorithm.AUTO
            else "clustering"
        )
        raise ClusteringError(
            f"Only {n} documents with embeddings are in scope: too few for {asked} "
            f"(at least {wanted} are needed)."
        )


# --- Selectors: the report --------------------------------------------------------

#: Size of the scatter map's drawing area (SVG user units).
MAP_WIDTH: Final = 640
MAP_HEIGHT: Final = 420
MAP_PADDING: Final = 12
#: Points drawn at most; above that an even sample is drawn.
MAP_POINTS: Final = 4000
#: Outliers listed at most.
OUTLIERS_LISTED: Final = 200
PALETTE: Final = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#393b79",
    "#637939",
    "#843c39",
)
NOISE_COLOUR: Final = "#9e9e9e"


def cluster_colour(number: int | None) -> str:
    return NOISE_COLOUR if number is None else PALETTE[number % len(PALETTE)]


@dataclass(frozen=True, slots=True)
class ReportDocument:
    document_id: int
    title: str


@dataclass(frozen=True, slots=True)
class MapPoint:
    x: float
    y: float
    colour: str
    title: str
    label: str


@dataclass(slots=True)
class ClusterView:
    cluster: Cluster
    colour: str
    visible_ids: list[int]
    representatives: list[ReportDocument]
    #: The label and terms, or "" and [] when the viewer may not see every
    #: member: they are computed from the members' text.
    label: str = ""
    terms: list[str] = field(default_factory=list)
    bar_width: float = 0.0
    #: The document changelist filtered to the members (set by the admin).
    documents_url: str = ""


@dataclass(frozen=True, slots=True)
class DriftRow:
    drift: Drift
    current_label: str
    previous_label: str


@dataclass(slots=True)
class ClusteringReport:
    run: ClusteringRun
    clusters: list[ClusterView]
    outliers: list[ReportDocument]
    outlier_count: int
    points: list[MapPoint]
    visible_count: int
    previous_run: ClusteringRun | None = None
    drift: list[DriftRow] = field(default_factory=list)


def visible_memberships(*, run: ClusteringRun, user: User) -> list[tuple[Any, ...]]:
    """(document id, title, cluster number, label, distance, x, y) per visible member."""
    return list(
        ClusterMembership.objects.filter(
            run=run, document__in=Document.objects.visible_to(user).values("pk")
        )
        .order_by("cluster__number", "distance_to_centroid", "document_id")
        .values_list(
            "document_id",
            "document__title",
            "cluster__number",
            "cluster__label",
            "distance_to_centroid",
            "x",
            "y",
        )
    )


def clustering_report(*, run: ClusteringRun, user: User) -> ClusteringReport:
    """What the report page shows ``user``: only documents they may see."""
    labels = shown_labels(run=run, user=user)
    rows = [
        (*row[:3], labels.get(row[2], ""), *row[4:])
        for row in visible_memberships(run=run, user=user)
    ]
    titles = {row[0]: row[1] for row in rows}
    clusters = list(run.clusters.order_by("number"))
    members: dict[int | None, list[int]] = {}
    for row in rows:
        members.setdefault(row[2], []).append(row[0])
    largest = max((c.size for c in clusters), default=1) or 1
    views = [
        ClusterView(
            cluster=c,
            colour=cluster_colour(c.number),
            visible_ids=members.get(c.number, []),
            representatives=[
                ReportDocument(i, titles[i]) for i in c.representatives if i in titles
            ],
            label=labels.get(c.number, ""),
            terms=c.terms if labels.get(c.number) else [],
            bar_width=c.size / largest,
        )
        for c in clusters
    ]
    outliers = [ReportDocument(i, titles[i]) for i in members.get(None, [])]
    report = ClusteringReport(
        run=run,
        clusters=views,
        outliers=outliers[:OUTLIERS_LISTED],
        outlier_count=len(outliers),
        points=_map_points(rows),
        visible_count=len(rows),
    )
    report.previous_run, report.drift = _drift(run, labels, user)
    return report


def shown_labels(*, run: ClusteringRun, user: User) -> dict[int, str]:
    """Each cluster's label, or "" where ``user`` may not see every member.

    Labels are distinctive words of the members' text, so a cluster with a
    restricted member could leak a word of it. The analytics views apply
    the same rule (search/migrations/0004_analytics_clustering.py).
    """
    visible = Document.objects.visible_to(user).values("pk")
    rows = run.clusters.annotate(
        hidden=Count("memberships", filter=~Q(memberships__document__in=visible))
    ).values_list("number", "label", "hidden")
    return {number: label if hidden == 0 else "" for number, label, hidden in rows}


def _map_points(rows: list[tuple[Any, ...]]) -> list[MapPoint]:
    """Members scaled into the map's box (y up), evenly sampled if many."""
    placed = [row for row in rows if row[5] is not None and row[6] is not None]
    if len(placed) > MAP_POINTS:
        placed = placed[:: -(-len(placed) // MAP_POINTS)]
    if not placed:
        return []
    xs = np.array([row[5] for row in placed])
    ys = np.array([row[6] for row in placed])
    sx = _scale(xs, MAP_WIDTH)
    sy = MAP_HEIGHT - _scale(ys, MAP_HEIGHT)
    return [
        MapPoint(
            x=round(float(px), 1),
            y=round(float(py), 1),
            colour=cluster_colour(row[2]),
            title=row[1],
            label="outlier" if row[2] is None else row[3] or f"cluster {row[2]}",
        )
        for row, px, py in zip(placed, sx, sy, strict=True)
    ]


def _scale(values: np.ndarray, size: int) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    span = (high - low) or 1.0
    return MAP_PADDING + (values - low) / span * (size - 2 * MAP_PADDING)


def previous_run(run: ClusteringRun) -> ClusteringRun | None:
    """The latest finished run of the same scope before ``run``."""
    return (
        ClusteringRun.objects.filter(
            status=ClusteringRun.Status.DONE,
            scope=run.scope,
            tag=run.tag,
            date_from=run.date_from,
            date_to=run.date_to,
            created_at__lt=run.created_at,
        )
        .exclude(pk=run.pk)
        .order_by("-created_at", "-pk")
        .first()
    )


def _drift(
    run: ClusteringRun, labels_now: dict[int, str], user: User
) -> tuple[ClusteringRun | None, list[DriftRow]]:
    if run.status != ClusteringRun.Status.DONE or (before := previous_run(run)) is None:
        return None, []
    labels_before = shown_labels(run=before, user=user)
    drifts = compare_memberships(_assignment(before), _assignment(run))
    return before, [
        DriftRow(
            drift=d,
            current_label=labels_now.get(d.current, "") if d.current is not None else "",
            previous_label=labels_before.get(d.previous, "") if d.previous is not None else "",
        )
        for d in drifts
    ]


def _assignment(run: ClusteringRun) -> dict[int, int | None]:
    return dict(run.memberships.values_list("document_id", "cluster__number"))


def csv_rows(*, run: ClusteringRun, user: User) -> list[list[object]]:
    """CSV export rows for ``user``: id, title, cluster, label, distance."""
    labels = shown_labels(run=run, user=user)
    return [
        [
            doc_id,
            title,
            "" if number is None else number,
            labels.get(number, ""),
            "" if distance is None else f"{distance:.4f}",
        ]
        for doc_id, title, number, _, distance, _, _ in visible_memberships(run=run, user=user)
    ]


def embedding_model_choices() -> list[tuple[str, str]]:
    """Embedding models present in the collection, with document counts."""
    rows = (
        Document.objects.exclude(embedding_model="")
        .order_by("embedding_model")
        .values("embedding_model")
        .annotate(n=Count("pk"))
    )
    return [(r["embedding_model"], f"{r['embedding_model']} ({r['n']} documents)") for r in rows]


# --- Selectors: near-duplicates ---------------------------------------------------

#: Neighbours examined per document; enough to pair up small groups of copies.
DUPLICATE_NEIGHBOURS: Final = 3
DUPLICATE_EF_SEARCH: Final = 20


@dataclass(frozen=True, slots=True)
class DuplicatePair:
    first: ReportDocument
    second: ReportDocument
    similarity: float
    model: str


def near_duplicate_pairs(
    *, user: User, threshold: float = 0.95, limit: int = 200
) -> list[DuplicatePair]:
    """Pairs of documents ``user`` may see whose embeddings are nearly equal.

    For each visible document its nearest neighbours come from the document
    HNSW index (per model and size, as the index is partial); a pair is
    listed once, most similar first.
    """
    visible = Document.objects.visible_to(user)
    groups = (
        visible.filter(embedding__isnull=False)
        .exclude(embedding_model="")
        .order_by()
        .values_list("embedding_model", _dims())
        .distinct()
    )
    pairs: list[DuplicatePair] = []
    for model, dims in groups:
        pairs.extend(
            _duplicates_of(visible, model=model, dims=int(dims), threshold=threshold, limit=limit)
        )
    pairs.sort(key=lambda p: (-p.similarity, p.first.document_id, p.second.document_id))
    return pairs[:limit]


def _dims() -> Func:
    return Func("embedding", function="vector_dims", output_field=IntegerField())


def _duplicates_of(
    visible: QuerySet[Document], *, model: str, dims: int, threshold: float, limit: int
) -> list[DuplicatePair]:
    d = int(dims)
    base_sql, params = base_cte(visible)
    # The neighbour scan gets its own copy of the visible set: a CTE used
    # twice is materialised and hash-joined, and the HNSW scan would then
    # read the whole index for every document instead of stopping early.
    inner_sql, inner_params = base_cte(visible)
    params += inner_params
    sql = f"""
    WITH {base_sql},
    {inner_sql.replace("base AS", "neighbour_base AS", 1)},
    near AS (
        SELECT least(a.id, n.id) AS lo, greatest(a.id, n.id) AS hi, n.sim
        FROM documents_document a CROSS JOIN LATERAL (
            SELECT b.id, 1 - (b.embedding::vector({d}) <=> a.embedding::vector({d})) AS sim
            FROM documents_document b
            WHERE vector_dims(b.embedding) = {d} AND b.embedding_model = %s
              AND b.id <> a.id AND b.id IN (SELECT id FROM neighbour_base)
            ORDER BY b.embedding::vector({d}) <=> a.embedding::vector({d})
            LIMIT {DUPLICATE_NEIGHBOURS}
        ) n
        WHERE a.id IN (SELECT id FROM base) AND vector_dims(a.embedding) = {d}
          AND a.embedding_model = %s AND n.sim >= %s
    ),
    pairs AS (SELECT DISTINCT ON (lo, hi) lo, hi, sim FROM near ORDER BY lo, hi, sim DESC)
    SELECT p.lo, x.title, p.hi, y.title, p.sim
    FROM pairs p JOIN documents_document x ON x.id = p.lo
    JOIN documents_document y ON y.id = p.hi
    ORDER BY p.sim DESC, p.lo, p.hi
    LIMIT %s"""
    with transaction.atomic(), connection.cursor() as cursor:
        # Copies sit right next to each other: a small candidate list finds
        # them (same pairs as ef_search=100 on SciFact, 3x faster).
        cursor.execute(f"SET LOCAL hnsw.ef_search = {DUPLICATE_EF_SEARCH}")
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute(sql, [*params, model, model, threshold, limit])
        rows = cursor.fetchall()
    return [
        DuplicatePair(
            first=ReportDocument(lo, t1),
            second=ReportDocument(hi, t2),
            similarity=float(sim),
            model=model,
        )
        for lo, t1, hi, t2, sim in rows
    ]
