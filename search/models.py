"""Search logs (every query and every result opened, for analysts) and API tokens."""

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
        SearchQueryLog,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
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


# --- API tokens -----------------------------------------------------------------


class ApiToken(models.Model):
    """A bearer token for the JSON API, acting as its user.

    Only a SHA-256 digest of the key is stored: the key itself is shown once,
    when the token is created (``create_api_token`` or the admin). A token
    opens ``/api/`` only, never the pages or the admin, and sees exactly what
    its user may see. Delete it to revoke it.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'wiki bot'.")
    #: The key's first characters, to tell tokens apart in lists and logs.
    prefix = models.CharField(max_length=12, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Leave empty for a token that does not expire."
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()
