"""Admin for the clustering report: start runs, read reports, export, find copies.

A run's change page *is* its report (runs are not edited). Extra pages hang
off the ModelAdmin's own URLs: the CSV export and the near-duplicate report.
Every document a page lists is filtered by ``visible_to`` for the viewer.
"""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from documents.admin import DocumentAdmin
from documents.embeddings import duplicate_threshold_for
from documents.models import Document
from search.clustering.models import Cluster, ClusteringRun
from search.clustering.selectors import (
    ClusterView,
    clustering_report,
    csv_rows,
    embedding_model_choices,
)
from search.clustering.services import clustering_run_queue, clustering_runs_reap
from search.related.duplicates import near_duplicate_pairs

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.forms import ModelForm
    from django.http import HttpRequest
    from django.urls import URLPattern


class ClusteringRunForm(forms.ModelForm):
    """The add form: scope, algorithm and its parameters, embedding model."""

    embedding_model = forms.ChoiceField(required=False)

    class Meta:
        model = ClusteringRun
        fields = [
            "scope",
            "tag",
            "date_from",
            "date_to",
            "algorithm",
            "k",
            "k_min",
            "k_max",
            "min_cluster_size",
            "embedding_model",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["embedding_model"].choices = [  # type: ignore[attr-defined]
            ("", "The one model in scope"),
            *embedding_model_choices(),
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        scope, algorithm = data.get("scope"), data.get("algorithm")
        if scope == ClusteringRun.Scope.TAG and not data.get("tag"):
            self.add_error("tag", "Give the tag whose documents to cluster.")
        if scope == ClusteringRun.Scope.DATES and not (
            data.get("date_from") or data.get("date_to")
        ):
            self.add_error("date_from", "Give at least one end of the date range.")
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "The range ends before it starts.")
        if algorithm == ClusteringRun.Algorithm.KMEANS and (data.get("k") or 0) < 2:
            self.add_error("k", "k-means needs k of at least 2.")
        if algorithm == ClusteringRun.Algorithm.AUTO:
            k_min, k_max = data.get("k_min") or 0, data.get("k_max") or 0
            if k_min < 2:
                self.add_error("k_min", "Try k from 2 upwards.")
            elif k_max < k_min:
                self.add_error("k_max", "The largest k must be at least the smallest.")
            elif k_max - k_min > 30:
                self.add_error("k_max", "Try at most 31 values of k in one run.")
        if data.get("tag"):
            data["tag"] = data["tag"].strip().lower()
        return data


class ClusterListFilter(admin.SimpleListFilter):
    """Documents of one cluster (``?cluster=<Cluster pk>``), for DocumentAdmin.

    :class:`ClusteredDocumentAdmin` adds it to the document changelist; the
    report then links every cluster there, however large the cluster.
    """

    title = "cluster"
    parameter_name = "cluster"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        if (value := self.value()) and value.isdigit():
            cluster = Cluster.objects.filter(pk=value).select_related("run").first()
            if cluster is not None:
                return [(value, f"Run #{cluster.run_id}: {cluster}")]
        return []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> QuerySet[Document]:
        if (value := self.value()) and value.isdigit():
            return queryset.filter(cluster_memberships__cluster_id=int(value))
        return queryset


class ClusteredDocumentAdmin(DocumentAdmin):
    """The documents' admin, filterable by cluster.

    Clustering builds on documents, not the reverse: this app extends the
    documents app's admin (as projects extend ``UserAdmin``) instead of the
    documents app importing clustering.
    """

    list_filter = [*DocumentAdmin.list_filter, ClusterListFilter]


admin.site.unregister(Document)
admin.site.register(Document, ClusteredDocumentAdmin)


@admin.register(ClusteringRun)
class ClusteringRunAdmin(admin.ModelAdmin):
    form = ClusteringRunForm
    list_display = [
        "__str__",
        "algorithm",
        "status_badge",
        "progress_bar",
        "document_count",
        "skipped_count",
        "cluster_count",
        "silhouette_display",
        "created_by",
        "created_at",
    ]
    list_filter = ["status", "algorithm", "scope"]
    list_select_related = ["created_by"]
    list_per_page = 50
    fieldsets = [
        ("Scope", {"fields": ["scope", "tag", "date_from", "date_to", "embedding_model"]}),
        ("Algorithm", {"fields": ["algorithm", "k", "k_min", "k_max", "min_cluster_size"]}),
    ]
    report_template = "admin/clustering/clusteringrun/report.html"
    duplicates_template = "admin/clustering/clusteringrun/duplicates.html"

    # --- Permissions ------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("clustering.run_clustering")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # Runs are records; start a new one instead.

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) or request.user.has_perm(
            "clustering.run_clustering"
        )

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    # --- Changelist -------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[ClusteringRun]:
        return super().get_queryset(request).annotate(_clusters=Count("clusters"))

    @admin.display(description="Status", ordering="status")
    def status_badge(self, run: ClusteringRun) -> str:
        colours = {
            "done": "#2e7d32",
            "failed": "#c62828",
            "running": "#1565c0",
            "queued": "#6d6d6d",
        }
        return format_html(
            '<span style="color:{}; font-weight:bold" title="{}">{}</span>',
            colours.get(run.status, "#000"),
            run.error or run.message,
            run.get_status_display(),
        )

    @admin.display(description="Progress", ordering="progress")
    def progress_bar(self, run: ClusteringRun) -> str:
        return format_html(
            '<progress max="100" value="{}" title="{}">{}%</progress> {}%',
            run.progress,
            run.message,
            run.progress,
            run.progress,
        )

    @admin.display(description="Clusters", ordering="_clusters")
    def cluster_count(self, run: ClusteringRun) -> int:
        return getattr(run, "_clusters", 0)

    @admin.display(description="Silhouette", ordering="silhouette")
    def silhouette_display(self, run: ClusteringRun) -> str:
        if run.silhouette is None:
            return self.get_empty_value_display()
        return f"{run.silhouette:.3f}"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        clustering_runs_reap()
        extra_context = {
            **(extra_context or {}),
            "duplicates_url": reverse("admin:clustering_clusteringrun_duplicates"),
        }
        return super().changelist_view(request, extra_context)

    # --- Adding a run -----------------------------------------------------------

    def save_model(
        self, request: HttpRequest, obj: ClusteringRun, form: ModelForm, change: bool
    ) -> None:
        obj.created_by = request.user  # type: ignore[assignment]
        clustering_run_queue(run=obj)

    def response_add(
        self, request: HttpRequest, obj: ClusteringRun, post_url_continue: str | None = None
    ) -> HttpResponse:
        self.message_user(
            request, f"{obj} is queued; this page follows its progress.", messages.SUCCESS
        )
        return HttpResponseRedirect(reverse("admin:clustering_clusteringrun_change", args=[obj.pk]))

    # --- The report -------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "duplicates/",
                view(self.duplicates_view),
                name="clustering_clusteringrun_duplicates",
            ),
            path(
                "<int:object_id>/export.csv",
                view(self.export_view),
                name="clustering_clusteringrun_export",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        clustering_runs_reap()  # A dead run's report would refresh forever.
        run = self._run(request, object_id)
        report = clustering_report(run=run, user=request.user)
        _link_clusters(report.clusters)
        context = {
            **self.admin_site.each_context(request),
            **(extra_context or {}),
            "opts": self.opts,
            "title": str(run),
            "run": run,
            "report": report,
            "silhouettes": sorted((int(k), v) for k, v in run.silhouette_by_k.items()),
            "export_url": reverse("admin:clustering_clusteringrun_export", args=[run.pk]),
            "duplicates_url": reverse("admin:clustering_clusteringrun_duplicates"),
            "has_delete_permission": self.has_delete_permission(request, run),
        }
        return TemplateResponse(request, self.report_template, context)

    def export_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        run = self._run(request, str(object_id))
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="clustering-{run.pk}.csv"'
        writer = csv.writer(response)
        writer.writerow(["document_id", "title", "cluster", "label", "distance_to_centroid"])
        writer.writerows(
            [_csv_safe(cell) for cell in row] for row in csv_rows(run=run, user=request.user)
        )
        return response

    def duplicates_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        threshold = _threshold(request.GET.get("threshold"))
        pairs = near_duplicate_pairs(user=request.user, threshold=threshold)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Possible duplicate documents",
            "threshold": threshold,
            "model_thresholds": sorted(
                {(pair.model, duplicate_threshold_for(pair.model)) for pair in pairs}
            ),
            "pairs": pairs,
        }
        return TemplateResponse(request, self.duplicates_template, context)

    def _run(self, request: HttpRequest, object_id: str) -> ClusteringRun:
        run = get_object_or_404(
            ClusteringRun.objects.select_related("created_by"),
            pk=object_id if object_id.isdigit() else -1,
        )
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        return run


def _link_clusters(clusters: list[ClusterView]) -> None:
    """Link each cluster to the document changelist filtered to its members."""
    base = reverse("admin:documents_document_changelist")
    for view in clusters:
        view.documents_url = f"{base}?cluster={view.cluster.pk}"


def _csv_safe(cell: object) -> object:
    """Keep spreadsheet apps from running a cell as a formula (CSV injection).

    https://owasp.org/www-community/attacks/CSV_Injection
    """
    if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + cell
    return cell


def _threshold(value: str | None) -> float | None:
    """The cosine asked for (0.5 to 1), or None: each model's own (calibrated) one."""
    try:
        threshold = float(value) if value else None
    except ValueError:
        return None
    return None if threshold is None else min(max(threshold, 0.5), 1.0)
