"""Documents, their chunks and the keyword postings derived from them."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from pgvector.django import VectorField

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


def content_hash_of(title: str, text: str) -> str:
    """Return the SHA-256 of what gets indexed: the title and the text."""
    digest = hashlib.sha256()
    digest.update(title.encode("utf-8", "surrogatepass"))
    digest.update(b"\0")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


class TimestampedModel(models.Model):
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class DocumentQuerySet(models.QuerySet["Document"]):
    def visible_to(self, user: User | AnonymousUser | None) -> DocumentQuerySet:
        """Documents ``user`` may see: the single visibility filter of every read.

        A document without groups is visible to every active user; one with
        groups only to members of those groups, its owner and superusers.
        """
        if user is None or not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        through = Document.groups.through.objects
        restricted = Exists(through.filter(document_id=OuterRef("pk")))
        member = Exists(
            through.filter(
                document_id=OuterRef("pk"),
                group_id__in=user.groups.values("pk"),
            )
        )
        return self.filter(~restricted | member | Q(owner_id=user.pk))

    def pending_embedding(self) -> DocumentQuerySet:
        return self.exclude(status=Document.Status.READY)

    def needs_indexing(self, model_name: str) -> DocumentQuerySet:
        """Documents not ready with an index (live or staged) of their current
        content by ``model_name``: what ``reembed --stale`` queues."""
        current = (
            Q(status=Document.Status.READY)
            & Q(embedded_hash=models.F("content_hash"))
            & (Q(embedding_model=model_name) | Q(staged_model=model_name))
        )
        return self.exclude(current)

    def needs_companion(self, companion_name: str) -> DocumentQuerySet:
        """English documents with chunks not embedded by the companion model
        ``companion_name`` (``documents.embeddings.get_companion``)."""
        from documents.embeddings import COMPANION_LANGUAGES

        lacking = Chunk.objects.filter(document_id=OuterRef("pk")).exclude(
            companion_model=companion_name
        )
        return self.filter(Exists(lacking), language__in=COMPANION_LANGUAGES)

    def stale(self, model_name: str) -> DocumentQuerySet:
        """Ready documents embedded by another model or from older content."""
        return self.needs_indexing(model_name).filter(status=Document.Status.READY)

    def with_chunk_counts(self) -> DocumentQuerySet:
        return self.annotate(chunk_count=models.Count("chunks"))


class Document(TimestampedModel):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    class SourceType(models.TextChoices):
        TEXT = "txt", "Plain text"
        MARKDOWN = "md", "Markdown"
        HTML = "html", "HTML"
        PDF = "pdf", "PDF"
        DOCX = "docx", "Word (DOCX)"
        HWP = "hwp", "Hangul (HWP/HWPX)"
        MANUAL = "manual", "Typed in"

    class Language(models.TextChoices):
        KOREAN = "ko", "Korean"
        ENGLISH = "en", "English"
        MIXED = "mixed", "Korean and English"

    title = models.CharField(max_length=500)
    text = models.TextField(blank=True)
    file = models.FileField(upload_to="documents/%Y/%m/", blank=True, max_length=500)
    original_filename = models.CharField(max_length=500, blank=True)
    # Where import_documents found the file; it finds the document again by
    # this path to skip unchanged files and update changed ones.
    source_path = models.CharField(max_length=1000, blank=True, db_index=True)
    file_hash = models.CharField(max_length=64, blank=True)
    source_type = models.CharField(
        max_length=10, choices=SourceType.choices, default=SourceType.MANUAL
    )
    language = models.CharField(max_length=5, choices=Language.choices, blank=True)
    tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="documents",
    )
    groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="documents",
        help_text="Only members of these groups may see the document. "
        "Leave empty to show it to all staff.",
    )

    # SHA-256 of the title and text (content_hash_of), kept by the write
    # path (documents.services.document_save) with the status it implies.
    content_hash = models.CharField(max_length=64, editable=False)
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    last_error = models.TextField(blank=True)
    #: The model of the live index: its chunks (those of this model) are the
    #: document's passages, and its vector below.
    embedding_model = models.CharField(max_length=200, blank=True)
    #: A model switch under way: the model of a second, complete set of
    #: chunks built from the same content, which replaces the live index
    #: when that model covers the collection (the cut-over).
    staged_model = models.CharField(max_length=200, blank=True)
    # The content hash the current chunks were made from: equal to
    # content_hash when the index is up to date.
    embedded_hash = models.CharField(max_length=64, blank=True)
    embedded_at = models.DateTimeField(null=True, blank=True)
    # Mean of the chunk embeddings; dimensionless so that models of any size
    # can coexist while a collection is re-embedded (see the HNSW indexes).
    embedding = VectorField(null=True, blank=True)
    # Number of keyword terms (title terms counted with their weight): the
    # document length of BM25.
    term_count = models.FloatField(default=0)

    objects = DocumentQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            GinIndex(fields=["tags"], name="document_tags_gin"),
            GinIndex(
                name="document_title_trgm",
                fields=["title"],
                opclasses=["gin_trgm_ops"],
            ),
            # BM25 reads every candidate's length and the collection's mean
            # length; this lets both be index-only scans instead of reading
            # the wide document rows.
            models.Index(fields=["id"], include=["term_count"], name="document_bm25_length"),
        ]
        permissions = [("reembed_document", "Can re-embed documents")]

    def __str__(self) -> str:
        return self.title

    @property
    def is_indexed(self) -> bool:
        return self.embedded_hash == self.content_hash and bool(self.embedding_model)


class Chunk(TimestampedModel):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    text = models.TextField()
    start_offset = models.PositiveIntegerField()
    end_offset = models.PositiveIntegerField()
    token_count = models.PositiveIntegerField()
    embedding = VectorField(null=True, blank=True)
    embedding_model = models.CharField(max_length=200, blank=True)
    #: The companion model's vector of an English chunk
    #: (``documents.embeddings.get_companion``): read only for the few
    #: candidates a search found, so it has no index.
    companion_embedding = VectorField(null=True, blank=True)
    companion_model = models.CharField(max_length=200, blank=True, db_default="")
    search_vector = SearchVectorField(null=True, blank=True)

    class Meta:
        ordering = ["document_id", "position"]
        constraints = [
            # One set of chunks per model: a model switch builds the new
            # model's set beside the live one (Document.staged_model).
            models.UniqueConstraint(
                fields=["document", "embedding_model", "position"], name="chunk_unique_position"
            ),
            models.CheckConstraint(
                condition=Q(end_offset__gte=models.F("start_offset")),
                name="chunk_offsets_ordered",
            ),
        ]
        indexes = [GinIndex(fields=["search_vector"], name="chunk_search_vector_gin")]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.position}"


class DocumentTerm(models.Model):
    """A keyword posting: how often an analysed term occurs in a document.

    The inverted index behind BM25 ranking in SQL; document frequencies are
    counted from it at query time over the documents the user may see, so
    restricted documents never shape another user's ranking. Written by the
    embedding pipeline together with the chunks.
    """

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="terms")
    term = models.CharField(max_length=64)
    tf = models.FloatField()
    #: The document's BM25 length (``Document.term_count``), written with the
    #: postings, so that ranking reads the postings alone.
    doc_length = models.FloatField(default=0)

    class Meta:
        constraints = [
            # Covering index: BM25 reads (term -> document, tf, length) without
            # the heap and without joining the documents.
            models.UniqueConstraint(
                fields=["term", "document"],
                include=["tf", "doc_length"],
                name="term_postings",
            )
        ]

    def __str__(self) -> str:
        return f"{self.term}@{self.document_id}"
