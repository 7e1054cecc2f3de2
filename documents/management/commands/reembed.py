"""Queue documents for (re-)embedding."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import F
from tqdm import tqdm

from documents.embeddings import get_embedder
from documents.models import Document
from documents.services import documents_index_queue, documents_reembed


class Command(BaseCommand):
    help = "Re-queue indexing: --all documents, --failed ones, or --stale ones."

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--all", action="store_true", help="Every document.")
        group.add_argument("--failed", action="store_true", help="Documents that failed.")
        group.add_argument(
            "--stale",
            action="store_true",
            help="Documents not indexed from their current text by the current model.",
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        documents = Document.objects.all()
        if options["failed"]:
            documents = documents.filter(status=Document.Status.FAILED)
        elif options["stale"]:
            model = get_embedder().name
            documents = documents.exclude(
                status=Document.Status.READY,
                embedding_model=model,
                embedded_hash=F("content_hash"),
            )
        ids = list(documents.order_by("pk").values_list("pk", flat=True))
        if not ids:
            self.stdout.write("Nothing to re-embed.")
            return
        batch = 200
        with tqdm(
            total=len(ids), unit="doc", disable=options["no_progress"], file=self.stderr._out
        ) as progress:
            for start in range(0, len(ids), batch):
                part = ids[start : start + batch]
                if options["stale"]:
                    documents_index_queue(document_ids=part)
                else:
                    documents_reembed(document_ids=part)
                progress.update(len(part))
        self.stdout.write(self.style.SUCCESS(f"Queued {len(ids)} document(s)."))
