"""Creating documents from typed text and from files."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction

from documents.ingestion import ExtractionError, extract_text
from documents.models import Document
from search.analysis import detect_language

if TYPE_CHECKING:
    from collections.abc import Iterable

    from django.contrib.auth.models import Group, User


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


def _language_of(title: str, text: str) -> str:
    return detect_language(f"{title}\n{text[:20000]}")


@transaction.atomic
def document_create(
    *,
    title: str,
    text: str,
    tags: Iterable[str] = (),
    owner: User | None = None,
    groups: Iterable[Group] = (),
    source_type: str = Document.SourceType.MANUAL,
) -> Document:
    """Create a document; indexing is queued once the transaction commits."""
    document = Document(
        title=title.strip()[:500],
        text=text,
        tags=_clean_tags(tags),
        owner=owner,
        source_type=source_type,
        language=_language_of(title, text),
    )
    document.full_clean(exclude=["file", "content_hash"])
    document.save()
    if groups:
        document.groups.set(groups)
    return document


def _clean_tags(tags: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for tag in tags:
        if cleaned := tag.strip().lower()[:64]:
            seen.setdefault(cleaned)
    return list(seen)


def document_ingest_bytes(
    *,
    data: bytes,
    filename: str,
    source_path: str = "",
    tags: Iterable[str] = (),
    owner: User | None = None,
    keep_file: bool = False,
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
        return _add_tags(existing, tags)
    try:
        extracted = extract_text(
            data, filename=filename, max_bytes=settings.DOCUMENTS_MAX_FILE_MB * 1024 * 1024
        )
    except ExtractionError as exc:
        return IngestResult(ImportOutcome.FAILED, existing, str(exc))
    with transaction.atomic():
        document = existing or Document(owner=owner, source_path=source_path)
        document.title = extracted.title.strip()[:500] or filename
        document.text = extracted.text
        document.source_type = extracted.source_type
        document.language = _language_of(document.title, extracted.text)
        document.original_filename = filename[-500:]
        document.file_hash = file_hash
        document.tags = _clean_tags([*document.tags, *tags])
        if keep_file:
            document.file.save(filename[-200:], ContentFile(data), save=False)
        document.save()
    outcome = ImportOutcome.UPDATED if existing else ImportOutcome.IMPORTED
    return IngestResult(outcome, document)


def _add_tags(document: Document, tags: Iterable[str]) -> IngestResult:
    merged = _clean_tags([*document.tags, *tags])
    if merged != document.tags:
        document.tags = merged
        document.save(update_fields=["tags", "updated_at"])
    return IngestResult(ImportOutcome.UNCHANGED, document)
