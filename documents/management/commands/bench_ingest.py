"""Benchmark the ingestion pipeline against the bare embedding model."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.database import switch_database
from documents.embeddings import EmbeddingProvider, get_embedder


class Command(BaseCommand):
    help = (
        "Index a corpus through the full pipeline (chunk, analyse, embed, store) "
        "and embed the same chunks with the bare model in the same run; print "
        "chunks/s for both and their ratio. Uses a separate database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--corpus",
            type=Path,
            default=Path(settings.BASE_DIR).parent / "shared/eval/scifact/corpus.jsonl",
            help="A BEIR corpus.jsonl (default: the SciFact corpus).",
        )
        parser.add_argument("--documents", type=int, default=500)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        corpus: Path = options["corpus"]
        if not corpus.is_file():
            raise CommandError(f"{corpus}: no such corpus file")
        rows = _read_corpus(corpus, options["documents"])
        embedder = get_embedder()
        switch_database(f"{settings.DATABASES['default']['NAME']}_bench_ingest")
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from config.celery import app
        from documents.models import Chunk, Document
        from documents.services import document_create, documents_index_queue

        app.conf.task_always_eager = True  # Measure this process, not a worker.
        Document.objects.all().delete()
        embedder.embed_texts(["warm up the model"] * 8)
        started = time.perf_counter()
        # Saved as any import saves them: indexing runs (eagerly, in this
        # process) one EMBEDDING_TASK_BATCH of documents at a time.
        ids = [
            document_create(title=title[:500] or "Untitled", text=text, index=False).pk
            for title, text in rows
        ]
        documents_index_queue(document_ids=ids)
        pipeline_seconds = time.perf_counter() - started
        chunks = Chunk.objects.count()
        inputs = _embed_inputs(embedder)
        started = time.perf_counter()
        embedder.embed_texts(inputs)
        bare_seconds = time.perf_counter() - started
        result: dict[str, Any] = {
            "model": embedder.name,
            "documents": len(rows),
            "chunks": chunks,
            "pipeline_chunks_per_s": round(chunks / pipeline_seconds, 1),
            "bare_encode_chunks_per_s": round(len(inputs) / bare_seconds, 1),
        }
        result["ratio"] = round(
            result["pipeline_chunks_per_s"] / result["bare_encode_chunks_per_s"], 3
        )
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        self.stdout.write(
            f"{result['documents']} documents, {chunks} chunks, model {embedder.name}\n"
            f"full pipeline : {result['pipeline_chunks_per_s']:>8} chunks/s"
            f" ({pipeline_seconds:.1f} s: save, chunk, analyse, embed, store)\n"
            f"bare encode   : {result['bare_encode_chunks_per_s']:>8} chunks/s"
            f" ({bare_seconds:.1f} s: model.encode on the same chunk texts)\n"
            f"ratio         : {result['ratio']:>8}  (target >= 0.85)"
        )


def _read_corpus(path: Path, limit: int) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                rows.append((str(row.get("title") or ""), str(row.get("text") or "")))
            if len(rows) >= limit:
                break
    return rows


def _embed_inputs(embedder: EmbeddingProvider) -> list[str]:
    """The exact texts the pipeline embedded: title prefix + chunk text."""
    from documents.models import Chunk
    from documents.services.indexing import title_prefix

    prefixes: dict[str, str] = {}
    inputs = []
    for title, text in Chunk.objects.order_by("document_id", "position").values_list(
        "document__title", "text"
    ):
        if title not in prefixes:
            prefixes[title] = title_prefix(title, embedder)[0]
        inputs.append(prefixes[title] + text)
    return inputs
