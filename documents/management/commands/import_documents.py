"""Import files or folders of documents, skipping unchanged files."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from tqdm import tqdm

from documents.ingestion import SUPPORTED_EXTENSIONS
from documents.models import Document
from documents.services import ImportOutcome, document_ingest_bytes, documents_index_queue

#: Pause before the one retry of a file whose database connection was lost.
_RECONNECT_PAUSE_SECONDS = 1.0


def _indexed(document: Document | None) -> bool:
    """Whether the document's index was built from its current content."""
    return document is None or (document.status == Document.Status.READY and document.is_indexed)


class Command(BaseCommand):
    help = (
        "Import .txt, .md, .html, .pdf and .docx files (folders are walked). "
        "Unchanged files are skipped by hash; changed files update their document."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument(
            "--tag",
            action="append",
            default=[],
            dest="tags",
            help="Tag every imported document (repeatable).",
        )
        parser.add_argument("--owner", help="Username that owns new documents.")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        files = self._collect(options["paths"])
        owner = None
        if options["owner"]:
            owner = get_user_model().objects.filter(username=options["owner"]).first()
            if owner is None:
                raise CommandError(f"no user named {options['owner']!r}")
        counts = {outcome: 0 for outcome in ImportOutcome}
        failures: list[tuple[Path, str]] = []
        progress = tqdm(
            files, unit="file", disable=options["no_progress"] or not files, file=self.stderr._out
        )
        # Indexing is queued in batches as the import goes on, so workers
        # embed many chunks together while the rest is still being read.
        queued: list[int] = []
        try:
            for path in progress:
                progress.set_postfix_str(path.name[-40:], refresh=False)
                outcome, error, document = self._import_one(path, options["tags"], owner)
                counts[outcome] += 1
                if error:
                    failures.append((path, error))
                elif document is not None and not _indexed(document):
                    # New or changed, or saved by an earlier run whose indexing
                    # never finished (the run or the database stopped first).
                    queued.append(document.pk)
                if len(queued) >= settings.EMBEDDING_TASK_BATCH:
                    documents_index_queue(document_ids=queued)
                    queued.clear()
            documents_index_queue(document_ids=queued)
        except DatabaseError as exc:  # Queueing the indexing failed.
            self._summary(counts, failures)
            raise CommandError(
                f"indexing could not be queued ({type(exc).__name__}: {exc}); "
                "run the import again to index the imported documents"
            ) from exc
        self._summary(counts, failures)

    def _collect(self, paths: list[Path]) -> list[Path]:
        files: list[Path] = []
        for path in paths:
            if path.is_dir():
                files.extend(
                    p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith(".")
                )
            elif path.is_file():
                files.append(path)
            else:
                raise CommandError(f"{path}: no such file or folder")
        return files

    def _import_one(
        self, path: Path, tags: list[str], owner: Any
    ) -> tuple[ImportOutcome, str, Document | None]:
        if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
            return (
                ImportOutcome.FAILED,
                (
                    f"unsupported file type '{path.suffix or path.name}' (supported: "
                    + ", ".join(sorted(SUPPORTED_EXTENSIONS))
                    + ")"
                ),
                None,
            )
        try:
            data = path.read_bytes()
        except OSError as exc:
            return ImportOutcome.FAILED, f"cannot read file: {exc.strerror or exc}", None
        ingest = partial(
            document_ingest_bytes,
            data=data,
            filename=path.name,
            source_path=str(path.resolve()),
            tags=tags,
            owner=owner,
            index=False,
        )
        try:
            try:
                result = ingest()
            except (OperationalError, InterfaceError):
                # The connection was lost (database restarted, network): drop it
                # so that the next query reconnects, and try this file once more.
                connection.close()
                time.sleep(_RECONNECT_PAUSE_SECONDS)
                result = ingest()
        except Exception as exc:  # The rest of the import goes on.
            if isinstance(exc, (OperationalError, InterfaceError)):
                connection.close()  # The next file reconnects.
            return ImportOutcome.FAILED, f"{type(exc).__name__}: {exc}", None
        return result.outcome, result.error, result.document

    def _summary(self, counts: dict[ImportOutcome, int], failures: list[tuple[Path, str]]) -> None:
        line = ", ".join(f"{counts[o]} {o.value}" for o in ImportOutcome)
        style = self.style.ERROR if failures else self.style.SUCCESS
        self.stdout.write(style(f"Import finished: {line}."))
        for path, error in failures:
            self.stdout.write(f"  failed: {path}: {error}")
