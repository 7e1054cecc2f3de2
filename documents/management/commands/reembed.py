"""Queue documents for (re-)embedding, follow a model switch, or force its cut-over."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from documents.embeddings import COMPANION_LANGUAGES, get_companion, get_embedder
from documents.models import Chunk, Document, DocumentQuerySet
from documents.selectors import forget_search_model, model_coverage
from documents.services import documents_cut_over, documents_index_queue, documents_reembed

#: Seconds between two looks at the database while waiting for workers.
POLL_SECONDS = 2.0


class Command(BaseCommand):
    help = (
        "Re-queue indexing: --all documents, --failed ones, or --stale ones (after a "
        "model change: search keeps using the old model until the new one covers the "
        "collection). --wait follows the workers with a progress bar; --cut-over makes "
        "the new model live even though some documents failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--all", action="store_true", help="Every document.")
        group.add_argument("--failed", action="store_true", help="Documents that failed.")
        group.add_argument(
            "--stale",
            action="store_true",
            help="Documents not indexed from their current text by the current model "
            "(or lacking the companion model's vectors).",
        )
        group.add_argument(
            "--cut-over",
            action="store_true",
            help="Search the current model now, although documents wait for it (failed).",
        )
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Wait until the workers have indexed every queued document.",
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        model = get_embedder().name
        if options["cut_over"]:
            moved = documents_cut_over(model_name=model, force=True)
            self.stdout.write(self.style.SUCCESS(f"Cut over to {model}: {moved} made live."))
            self._coverage()
            return
        documents = Document.objects.all()
        if options["failed"]:
            documents = documents.filter(status=Document.Status.FAILED)
        elif options["stale"]:
            documents = _stale(documents, model)
        ids = list(documents.order_by("pk").values_list("pk", flat=True))
        if not ids:
            self.stdout.write("Nothing to re-embed.")
            self._coverage()
            return
        progress = tqdm(
            total=len(ids),
            unit="doc",
            desc=f"indexing with {model}",
            disable=options["no_progress"],
            file=self.stderr._out,
        )
        eager = settings.CELERY_TASK_ALWAYS_EAGER
        batch = settings.EMBEDDING_TASK_BATCH
        with progress:
            for start in range(0, len(ids), batch):
                part = ids[start : start + batch]
                if options["all"] or options["failed"]:
                    documents_reembed(document_ids=part)
                else:
                    documents_index_queue(document_ids=part)
                if eager:  # Indexed in this process: the bar shows the work done.
                    progress.update(len(part))
            self.stdout.write(f"Queued {len(ids)} document(s).")
            if options["wait"] and not eager:
                self._wait(ids, model, progress)
        self._coverage()

    def _wait(self, ids: list[int], model: str, progress: tqdm) -> None:
        """Follow the workers until every queued document is indexed (or failed)."""
        while True:
            queued = Document.objects.filter(pk__in=ids)
            done = queued.exclude(pk__in=_stale(queued, model)).count()
            failed = queued.filter(status=Document.Status.FAILED).count()
            progress.update(done + failed - progress.n)
            if done + failed >= len(ids):
                break
            time.sleep(POLL_SECONDS)
        if failed:
            raise CommandError(
                f"{failed} document(s) failed (see the admin); fix them and run "
                "`reembed --failed`, or `reembed --cut-over` to search without them"
            )

    def _coverage(self) -> None:
        forget_search_model()
        for row in model_coverage():
            marks = [
                m for m, on in (("configured", row.configured), ("searched", row.searched)) if on
            ]
            suffix = f" ({', '.join(marks)})" if marks else ""
            staged = f" + {row.staged} staged" if row.staged else ""
            self.stdout.write(f"  {row.model}: {row.documents} document(s){staged}{suffix}")
        if (companion := get_companion()) is not None:
            english = Chunk.objects.filter(document__language__in=COMPANION_LANGUAGES)
            done = english.filter(companion_model=companion.name).count()
            self.stdout.write(
                f"  {companion.name} (companion): {done} of {english.count()} English chunk(s)"
            )


def _stale(documents: DocumentQuerySet, model: str) -> DocumentQuerySet:
    """Documents not indexed from their current text by ``model``, and English
    ones whose chunks lack the companion model's vectors (the indexing task
    adds only those)."""
    stale = documents.needs_indexing(model)
    if (companion := get_companion()) is not None:
        stale = stale | documents.needs_companion(companion.name)
    return stale
