from __future__ import annotations

from django.apps import AppConfig


class ClusteringConfig(AppConfig):
    """The clustering report: runs, clusters and memberships, and their admin."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "search.clustering"
    label = "clustering"
    verbose_name = "Clustering"
