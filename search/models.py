"""Search logs: every query and every result opened, for analysts."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class SearchQueryLog(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    query = models.TextField()
    mode = models.CharField(max_length=10)
    filters = models.JSONField(default=dict, blank=True)
    result_count = models.PositiveIntegerField()
    latency_ms = models.FloatField()
    source = models.CharField(max_length=10, default="web")  # web or api
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.mode}: {self.query[:60]}"


class SearchResultClick(models.Model):
    search = models.ForeignKey(
        SearchQueryLog, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="clicks",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    document = models.ForeignKey(
        "documents.Document", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    rank = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"click {self.document_id} from {self.search_id}"
