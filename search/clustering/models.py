"""Clustering runs, their clusters and each document's membership.

The tables kept the names they had in the ``search`` app (``search_clusteringrun``,
``search_cluster``, ``search_clustermembership``): the analysts' views read them
by name, and moving the models between apps must not move the data.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ClusteringRun(models.Model):
    """One clustering of (part of) the collection, started from the admin.

    The run row doubles as the job's progress record: the task updates
    ``status``, ``progress`` and ``message`` in short statements of their own
    and writes the clusters in one transaction at the end.
    """

    class Scope(models.TextChoices):
        ALL = "all", "All documents"
        TAG = "tag", "Documents with a tag"
        DATES = "dates", "Documents added in a date range"

    class Algorithm(models.TextChoices):
        KMEANS = "kmeans", "k-means (fixed k)"
        AUTO = "auto", "k-means, k chosen by silhouette"
        HDBSCAN = "hdbscan", "HDBSCAN (density; finds outliers)"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.ALL)
    tag = models.CharField(max_length=64, blank=True)
    date_from = models.DateField(null=True, blank=True, help_text="Added on or after.")
    date_to = models.DateField(null=True, blank=True, help_text="Added on or before.")
    algorithm = models.CharField(max_length=10, choices=Algorithm.choices, default=Algorithm.AUTO)
    k = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Number of clusters (k-means)."
    )
    k_min = models.PositiveSmallIntegerField(default=2, help_text="Smallest k tried (auto).")
    k_max = models.PositiveSmallIntegerField(default=12, help_text="Largest k tried (auto).")
    min_cluster_size = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="HDBSCAN: smallest cluster (empty: 1% of the documents, at least 5).",
    )
    embedding_model = models.CharField(
        max_length=200,
        blank=True,
        help_text="Cluster only documents embedded by this model (empty: the one model in scope).",
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.TextField(blank=True)
    error = models.TextField(blank=True)
    document_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(
        default=0, help_text="Documents in scope without an embedding, left out."
    )
    silhouette = models.FloatField(null=True, blank=True)
    #: Automatic k: the silhouette of every k tried, {"2": 0.31, ...}.
    silhouette_by_k = models.JSONField(default=dict, blank=True)
    projection_computed = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    #: Last progress written by the task: a running run silent for longer
    #: than the task's time limit has lost its worker.
    updated_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "search_clusteringrun"
        ordering = ["-created_at", "-id"]
        permissions = [("run_clustering", "Can start clustering runs")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(progress__lte=100), name="clusteringrun_progress_max_100"
            ),
            models.CheckConstraint(
                condition=models.Q(k_min__lte=models.F("k_max")),
                name="clusteringrun_k_range_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"Clustering #{self.pk} ({self.scope_description})"

    @property
    def scope_description(self) -> str:
        match self.scope:
            case self.Scope.TAG:
                return f"tag “{self.tag}”"
            case self.Scope.DATES:
                return f"added {self.date_from or '…'} to {self.date_to or '…'}"
            case _:
                return "all documents"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)


class Cluster(models.Model):
    run = models.ForeignKey(ClusteringRun, on_delete=models.CASCADE, related_name="clusters")
    #: 0 is the largest cluster of the run.
    number = models.PositiveIntegerField()
    label = models.CharField(max_length=200, blank=True)
    terms = models.JSONField(default=list, blank=True)
    size = models.PositiveIntegerField()
    #: Mean cosine similarity of the members to the centroid.
    cohesion = models.FloatField()
    #: Ids of the documents nearest the centroid, nearest first.
    representatives = models.JSONField(default=list, blank=True)
    x = models.FloatField(null=True, blank=True)
    y = models.FloatField(null=True, blank=True)

    class Meta:
        db_table = "search_cluster"
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="cluster_unique_number")
        ]

    def __str__(self) -> str:
        return f"{self.number}: {self.label}"


class ClusterMembership(models.Model):
    run = models.ForeignKey(ClusteringRun, on_delete=models.CASCADE, related_name="memberships")
    #: Null for HDBSCAN noise: a document in no cluster.
    cluster = models.ForeignKey(
        Cluster, null=True, blank=True, on_delete=models.CASCADE, related_name="memberships"
    )
    document = models.ForeignKey(
        "documents.Document", on_delete=models.CASCADE, related_name="cluster_memberships"
    )
    distance_to_centroid = models.FloatField(null=True, blank=True)
    x = models.FloatField(null=True, blank=True)
    y = models.FloatField(null=True, blank=True)

    class Meta:
        db_table = "search_clustermembership"
        constraints = [
            models.UniqueConstraint(fields=["run", "document"], name="membership_unique_document")
        ]
        indexes = [models.Index(fields=["run", "cluster"], name="membership_run_cluster")]

    def __str__(self) -> str:
        return f"{self.document_id} in {self.cluster_id or 'noise'}"
