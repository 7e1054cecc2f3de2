"""Writing documents: the one path every save takes (admin, import, code).

:func:`document_save` owns what derives from a document's content: the
content hash, the status reset when the content changed, tag cleaning and
language detection. It queues indexing explicitly once the transaction
commits; :func:`document_create`, :func:`document_update` and
:func:`document_ingest_bytes` are built on it. Bulk writers pass
``index=False``, collect the ids and queue them once
(:func:`~documents.services.indexing.documents_index_queue`).
"""

from __future__ import annotations

import enum
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction

from documents.analysis import detect_language
from documents.ingestion import ExtractionError, extract_text
from documents.models import Document, content_hash_of
from documents.services.dispatch import documents_index_queue
from documents.services.indexing import document_index_keywords, documents_mark_failed

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from django.contrib.auth.models import Group, User


logger = logging.getLogger(__name__)


class ImportOutcome(enum.StrEnum):
    IMPORTED = "imported"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class IngestResult:
    outcome: ImportOutcome
    document: Document | None = None
    error: str = ""


#: Characters of a document read to tell its language.
LANGUAGE_SAMPLE_CHARS = 20000
TITLE_MAX_CHARS = 500
TAG_MAX_CHARS = 64


def document_language(*, title: str, text: str) -> str:
    """The language of a document: ``ko``, ``en`` or ``mixed``."""
    return detect_language(f"{title}\n{text[:LANGUAGE_SAMPLE_CHARS]}")


def clean_tags(tags: Iterable[str]) -> list[str]:
    """Tags as stored: stripped, lower-case, at most 64 characters, no repeats."""
    seen: dict[str, None] = {}
    for tag in tags:
        if cleaned := tag.strip().lower()[:TAG_MAX_CHARS]:
            seen.setdefault(cleaned)
    return list(seen)


def _prepare(document: Document) -> bool:
    """Fill what derives from the document's own fields; True if its content changed."""
    document.title = document.title.strip()[:TITLE_MAX_CHARS]
    document.tags = clean_tags(document.tags)
    new_hash = content_hash_of(document.title, document.text)
    changed = new_hash != document.content_hash
    if changed or not document.language:
        document.language = document_language(title=document.title, text=document.text)
    if changed:
        document.content_hash = new_hash
        # A document being indexed stays "processing": the running task sees
        # the new hash and leaves its stale result unstored.
        if document.status != Document.Status.PROCESSING:
            document.status = Document.Status.PENDING
            document.last_error = ""
    return changed


@transaction.atomic
def document_save(
    *, document: Document, groups: Iterable[Group] | None = None, index: bool = True
) -> bool:
    """Validate and save a new or changed document; return whether its content changed.

    Changed content is searchable by keyword at once (its chunks and
    postings are written in this transaction) and pending until embedded:
    with ``index`` (the default) the embedding is queued once the
    transaction commits; bulk writers pass ``index=False`` and queue the
    ids themselves, in batches.
    """
    changed = _prepare(document)
    document.full_clean(exclude=["file"])
    document.save()
    if groups is not None:
        document.groups.set(groups)
    if changed:
        _index_keywords(document)
        if index:
            documents_index_queue(document_ids=[document.pk])
    return changed


def _index_keywords(document: Document) -> None:
    """Make the saved content searchable by keyword now; vectors come later."""
    try:
        with transaction.atomic():
            document_index_keywords(document=document)
    except Exception as exc:  # The document is saved; only its index failed.
        logger.exception("Could not index document %s", document.pk)
        documents_mark_failed(document_ids=[document.pk], error=f"chunking failed: {exc}")
        document.refresh_from_db(fields=["status", "last_error"])


def document_create(
    *,
    title: str,
    text: str,
    tags: Iterable[str] = (),
    owner: User | None = None,
    groups: Iterable[Group] = (),
    source_type: str = Document.SourceType.MANUAL,
    index: bool = True,
) -> Document:
    """Create a document; indexing is queued once the transaction commits."""
    document = Document(
        title=title, text=text, tags=list(tags), owner=owner, source_type=source_type
    )
    document_save(document=document, groups=list(groups) or None, index=index)
    return document


def document_update(*, document: Document, index: bool = True, **fields: Any) -> bool:
    """Change a document's fields and save it; return whether its content changed."""
    unknown = sorted(set(fields) - {f.name for f in Document._meta.get_fields()})
    if unknown:
        raise TypeError(f"Document has no field(s) {', '.join(unknown)}")
    groups = fields.pop("groups", None)
    for name, value in fields.items():
        setattr(document, name, value)
    return document_save(document=document, groups=groups, index=index)


def documents_bulk_create(
    *, documents: Sequence[Document], batch_size: int = 1000
) -> list[Document]:
    """Create many unsaved documents in a few statements, without queueing indexing.

    For loaders that index the documents themselves (evaluation, benchmarks).
    """
    for document in documents:
        _prepare(document)
    return Document.objects.bulk_create(documents, batch_size=batch_size)


def document_ingest_bytes(
    *,
    data: bytes,
    filename: str,
    source_path: str = "",
    tags: Iterable[str] = (),
    owner: User | None = None,
    keep_file: bool = False,
    index: bool = True,
) -> IngestResult:
    """Create or update a document from a file's bytes.

    With ``source_path`` an existing document from the same path is updated
    when the file changed and left alone when it did not. A file that cannot
    be read is refused before anything is saved, so a stored document is never
    replaced by a broken one.
    """
    file_hash = hashlib.sha256(data).hexdigest()
    existing = (
        Document.objects.filter(source_path=source_path).order_by("pk").first()
        if source_path
        else None
    )
    if existing is not None and existing.file_hash == file_hash:
        if set(clean_tags(tags)) - set(existing.tags):
            document_update(document=existing, tags=[*existing.tags, *tags], index=index)
        return IngestResult(ImportOutcome.UNCHANGED, existing)
    try:
        extracted = extract_text(
            data, filename=filename, max_bytes=settings.DOCUMENTS_MAX_FILE_MB * 1024 * 1024
        )
    except ExtractionError as exc:
        return IngestResult(ImportOutcome.FAILED, existing, str(exc))
    with transaction.atomic():
        document = existing or Document(owner=owner, source_path=source_path)
        document.title = extracted.title.strip() or filename
        document.text = extracted.text
        document.source_type = extracted.source_type
        document.original_filename = filename[-500:]
        document.file_hash = file_hash
        document.tags = [*document.tags, *tags]
        if keep_file:
            document.file.save(filename[-200:], ContentFile(data), save=False)
        document_save(document=document, index=index)
    outcome = ImportOutcome.UPDATED if existing else ImportOutcome.IMPORTED
    return IngestResult(outcome, document)
