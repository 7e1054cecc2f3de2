"""Every answer given, with what it cited, for the analysts (``analytics.answers``)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AnswerLog(models.Model):
    class Kind(models.TextChoices):
        EXTRACTIVE = "extractive", "A sentence of the documents"
        GENERATED = "generated", "Written by the language model from the passages"
        NONE = "none", "No answer found in the documents"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    question = models.TextField()
    kind = models.CharField(max_length=12, choices=Kind.choices)
    answer = models.TextField(blank=True)
    #: [{"number": 1, "document_id": 7, "chunk_id": 40}, ...]
    citations = models.JSONField(default=list, blank=True)
    #: Why a generated answer fell back to an extractive one, if it did.
    note = models.TextField(blank=True)
    latency_ms = models.FloatField()
    source = models.CharField(max_length=10, default="web")  # web or api
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.question[:60]}"
