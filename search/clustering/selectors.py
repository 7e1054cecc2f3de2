"""Clustering runs: what a run reads and what its report shows (selectors).

The inputs selectors read a run's scope for :mod:`search.clustering.services`
and raise ``ClusteringError`` when it cannot be clustered. The report
selectors serve the admin report. Runs cluster the whole scope whoever
started them; every *document* a selector hands to a page is filtered by
``Document.objects.visible_to(user)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from django.db.models import Count, Q, TextField, Value
from django.db.models.functions import Concat, Left

from documents.embeddings import language_centering_for
from documents.models import Document
from search.clustering.algorithms import Drift, centre_by_language, compare_memberships
from search.clustering.models import Cluster, ClusteringRun, ClusterMembership

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.auth.models import User as AuthUser
    from django.db.models import QuerySet

    User = AuthUser | AnonymousUser

#: Characters of each document read for labels (title + start of the text).
LABEL_TEXT_CHARS: Final = 2000


class ClusteringError(Exception):
    """A run cannot go ahead; the message is shown to the admin as is."""


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
            "language",
        )
    )
    _check_size(run, len(rows))
    try:
        vectors = np.asarray([row[2] for row in rows], dtype=np.float32)
    except ValueError:
        raise ClusteringError(
            f"Embeddings of model {model} have different sizes; re-embed the documents."
        ) from None
    if language_centering_for(model) > 0:
        vectors = centre_by_language(vectors, np.asarray([row[3] == "en" for row in rows]))
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
