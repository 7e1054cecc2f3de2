"""Admin for content managers: documents, their status and chunks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin, messages
from django.db.models import Count, F, Q
from django.utils.html import format_html
from django.utils.text import Truncator

from documents.forms import DocumentAdminForm
from documents.models import Chunk, Document, DocumentQuerySet
from documents.selectors import model_coverage
from documents.services import document_save, documents_reembed

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.forms import ModelForm
    from django.http import HttpRequest, HttpResponse


class ChunkInline(admin.TabularInline):
    model = Chunk
    fields = ("position", "preview", "start_offset", "end_offset", "token_count", "embedding_model")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False
    ordering = ["position"]

    @admin.display(description="Text")
    def preview(self, chunk: Chunk) -> str:
        return Truncator(chunk.text).chars(300)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Chunk]:
        return super().get_queryset(request).defer("embedding", "search_vector")


class TagFilter(admin.SimpleListFilter):
    title = "tag"
    parameter_name = "tag"

    def lookups(self, request: HttpRequest, model_admin: object) -> list[tuple[str, str]]:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT unnest(tags) AS tag FROM documents_document ORDER BY 1 LIMIT 200"
            )
            return [(tag, tag) for (tag,) in cursor.fetchall()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> QuerySet[Document]:
        if self.value():
            return queryset.filter(tags__contains=[self.value()])
        return queryset


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    form = DocumentAdminForm
    list_display = [
        "title",
        "status_badge",
        "source_type",
        "language",
        "tag_list",
        "chunk_count",
        "embedding_model",
        "updated_at",
    ]
    list_filter = [
        "status",
        "source_type",
        "language",
        TagFilter,
        "groups",
        "embedding_model",
    ]
    search_fields = ["title", "original_filename", "tags"]
    list_select_related = ["owner"]
    list_per_page = 50
    date_hierarchy = "updated_at"
    readonly_fields = [
        "status",
        "last_error",
        "source_type",
        "language",
        "original_filename",
        "source_path",
        "content_hash",
        "embedded_hash",
        "embedding_model",
        "embedded_at",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["title", "upload", "text", "tags"]}),
        ("Access", {"fields": ["owner", "groups"]}),
        (
            "Indexing",
            {
                "fields": [
                    "status",
                    "last_error",
                    "embedding_model",
                    "embedded_at",
                    "content_hash",
                    "embedded_hash",
                ]
            },
        ),
        (
            "Source",
            {
                "fields": [
                    "source_type",
                    "language",
                    "original_filename",
                    "source_path",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
    ]
    inlines = [ChunkInline]
    actions = ["reembed_selected", "retry_failed"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Document]:
        documents = cast("DocumentQuerySet", super().get_queryset(request))
        return (
            documents.visible_to(request.user)
            .defer("text", "embedding")
            .annotate(
                # The live index's chunks (a model switch stages a second set).
                _chunk_count=Count("chunks", filter=Q(chunks__embedding_model=F("embedding_model")))
            )
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The changelist, headed by the documents each embedding model indexes.

        During a model switch it shows how far the re-embed has come, and
        which model semantic search uses meanwhile.
        """
        coverage = model_coverage()
        extra_context = {
            **(extra_context or {}),
            "embedding_models": coverage,
            "embedding_total": Document.objects.exclude(embedding_model="").count(),
        }
        return super().changelist_view(request, extra_context)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, document: Document) -> str:
        colours = {
            "ready": "#2e7d32",
            "failed": "#c62828",
            "processing": "#1565c0",
            "pending": "#6d6d6d",
        }
        return format_html(
            '<span style="color:{}; font-weight:bold" title="{}">{}</span>',
            colours.get(document.status, "#000"),
            document.last_error,
            document.get_status_display(),
        )

    @admin.display(description="Tags")
    def tag_list(self, document: Document) -> str:
        return ", ".join(document.tags)

    @admin.display(description="Chunks", ordering="_chunk_count")
    def chunk_count(self, document: Document) -> int:
        return getattr(document, "_chunk_count", 0)

    def save_model(
        self, request: HttpRequest, obj: Document, form: ModelForm, change: bool
    ) -> None:
        """Save through the documents' one write path (hash, status, tags, language)."""
        if not change and obj.owner_id is None:
            obj.owner = request.user  # type: ignore[assignment]
        if document_save(document=obj):
            self.message_user(request, f"“{obj.title}” is queued for indexing.", messages.INFO)

    @admin.action(description="Re-embed selected documents", permissions=["reembed"])
    def reembed_selected(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        count = documents_reembed(document_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(
            request, f"Queued {count} document(s) for re-embedding.", messages.SUCCESS
        )

    @admin.action(description="Retry failed documents", permissions=["reembed"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        ids = list(queryset.filter(status=Document.Status.FAILED).values_list("pk", flat=True))
        if not ids:
            self.message_user(
                request, "None of the selected documents has failed.", messages.WARNING
            )
            return
        documents_reembed(document_ids=ids)
        self.message_user(request, f"Queued {len(ids)} failed document(s) again.", messages.SUCCESS)

    def has_reembed_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("documents.reembed_document")
