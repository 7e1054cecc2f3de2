"""Search latency benchmark on a corpus of 100k+ chunks."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from pgvector import Vector
from tqdm import tqdm

from config.database import switch_database
from documents.embeddings import EmbeddingProvider, get_embedder

CHUNKS_PER_DOCUMENT = 5
BASE_TEXTS = 3000


class Command(BaseCommand):
    help = (
        "Build (or reuse) a corpus of --chunks chunks in a separate database, run "
        "queries in every mode and print p50/p95 latency, HNSW recall@10 against "
        "an exact scan, and the index's speed-up over that scan."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        default = Path(settings.BASE_DIR).parent / "shared/eval/scifact"
        parser.add_argument(
            "--dataset",
            type=Path,
            default=default,
            help="A BEIR folder: its texts and queries are used.",
        )
        parser.add_argument("--chunks", type=int, default=100_000)
        parser.add_argument("--queries", type=int, default=300)
        parser.add_argument("--rebuild", action="store_true")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        dataset: Path = options["dataset"]
        if not (dataset / "corpus.jsonl").is_file():
            raise CommandError(f"{dataset}: not a BEIR folder")
        # Latencies on two cores double under load: say how quiet the machine
        # was (read before building the corpus, which loads it by itself).
        load = os.getloadavg()[0]
        embedder = get_embedder()
        switch_database(f"{settings.DATABASES['default']['NAME']}_bench_search")
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from documents.models import Chunk

        have = Chunk.objects.filter(embedding_model=embedder.name).count()
        if options["rebuild"] or have < options["chunks"]:
            build_corpus(dataset, embedder, options["chunks"], self.stderr._out)
        queries = _queries(dataset, options["queries"])
        result = run_benchmark(queries, embedder)
        result["load_average"] = load
        result["cpus"] = os.cpu_count()
        result["chunks"] = Chunk.objects.count()
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        self._print(result)

    def _print(self, r: dict[str, Any]) -> None:
        self.stdout.write(
            f"\n{r['chunks']} chunks, {r['queries']} queries, model {r['model']},"
            f" hnsw.ef_search={r['ef_search']}"
        )
        self.stdout.write(
            f"load average at start: {r['load_average']:.2f} on {r['cpus']} CPUs"
            + ("  (busy machine: latencies are inflated)" if r["load_average"] > 1 else "")
        )
        self.stdout.write(
            f"query embedding: p50 {r['embed_ms']['p50']:.1f} ms, p95 {r['embed_ms']['p95']:.1f} ms"
        )
        self.stdout.write(
            f"{'mode':<10}{'p50 ms':>10}{'p95 ms':>10}  (including the query embedding)"
        )
        for mode, m in r["modes"].items():
            self.stdout.write(f"{mode:<10}{m['p50']:>10.1f}{m['p95']:>10.1f}")
        self.stdout.write(
            f"HNSW recall@10 vs exact scan: {r['recall_at_10']:.3f}\n"
            f"nearest-chunk SQL: index p50 {r['index_ms']['p50']:.1f} ms,"
            f" exact p50 {r['exact_ms']['p50']:.1f} ms, speed-up {r['speedup']:.1f}x"
        )


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
    }


def _queries(dataset: Path, limit: int) -> list[str]:
    texts = [
        json.loads(line)["text"]
        for line in (dataset / "queries.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return texts[:limit]


def build_corpus(dataset: Path, embedder: EmbeddingProvider, chunks: int, out: Any) -> None:
    """Documents of five chunks each, with real text and embedding-model vectors.

    Embedding 100k chunks takes most of an hour on two cores, so the model
    embeds ``BASE_TEXTS`` real passages and every chunk vector is a
    normalised random mixture of two of them (weights 0.55-1.0 and the rest):
    vectors stay on the model's own manifold and are all distinct. Chunk
    texts are the first passage's, so keyword search has real text too.
    """
    from django.db import connection
    from django.utils import timezone

    from documents.analysis import analyze_many, document_postings
    from documents.models import Document, content_hash_of

    rows = [
        json.loads(line)
        for line in (dataset / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    base = rows[:BASE_TEXTS]
    texts = [f"{r.get('title', '')}\n{r.get('text', '')}"[:400] for r in base]
    vectors = embedder.embed_texts(texts)
    terms = analyze_many(texts)
    Document.objects.all().delete()
    rng = random.Random(7)
    documents = max(1, chunks // CHUNKS_PER_DOCUMENT)
    dims = embedder.dimensions
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS documents_chunk_embedding_{dims}_hnsw")
    for start in tqdm(range(0, documents, 1000), desc="building corpus", unit="k docs", file=out):
        batch = []
        for number in range(start, min(start + 1000, documents)):
            picks = [rng.randrange(len(base)) for _ in range(CHUNKS_PER_DOCUMENT)]
            title = f"{base[picks[0]].get('title', '')[:200]} ({number})"
            text = "\n\n".join(texts[i] for i in picks)
            batch.append(
                (
                    Document(
                        title=title,
                        text=text,
                        content_hash=content_hash_of(title, text),
                        status=Document.Status.READY,
                        embedding_model=embedder.name,
                    ),
                    picks,
                )
            )
        created = Document.objects.bulk_create([d for d, _ in batch])
        chunk_rows: list[tuple[Any, ...]] = []
        postings: list[tuple[int, str, float, float]] = []
        for document, (_, picks) in zip(created, batch, strict=True):
            offset = 0
            mixed = []
            for position, i in enumerate(picks):
                other = rng.randrange(len(base))
                weight = rng.uniform(0.55, 1.0)
                vector = weight * vectors[i] + (1 - weight) * vectors[other]
                vector /= np.linalg.norm(vector)
                mixed.append(vector)
                chunk_rows.append(
                    (
                        document.pk,
                        position,
                        texts[i],
                        offset,
                        offset + len(texts[i]),
                        len(terms[i]),
                        Vector(vector),
                        embedder.name,
                        _tsvector(terms[i]),
                    )
                )
                offset += len(texts[i]) + 2
            tf, length = document_postings(
                title_terms=[], body_terms=[t for i in picks for t in terms[i]]
            )
            postings.extend((document.pk, t, f, length) for t, f in tf.items())
            mean = np.mean(mixed, axis=0)
            document.embedding = (mean / np.linalg.norm(mean)).tolist()
            document.term_count = length
            document.embedded_hash = document.content_hash
        Document.objects.bulk_update(created, ["embedding", "term_count", "embedded_hash"])
        with connection.cursor() as cursor:
            with cursor.cursor.copy(
                "COPY documents_documentterm (document_id, term, tf, doc_length) FROM STDIN"
            ) as copy:
                for row in postings:
                    copy.write_row(row)
            with cursor.cursor.copy(
                "COPY documents_chunk (document_id, position, text, start_offset, end_offset,"
                " token_count, embedding, embedding_model, search_vector, created_at,"
                " updated_at) FROM STDIN"
            ) as copy:
                now = timezone.now()
                for row in chunk_rows:
                    copy.write_row((*row, now, now))
    out.write("building the HNSW index...\n")
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute(
            f"CREATE INDEX documents_chunk_embedding_{dims}_hnsw ON documents_chunk USING hnsw "
            f"((embedding::vector({dims})) vector_cosine_ops) WITH (m = 16, ef_construction = 64) "
            f"WHERE vector_dims(embedding) = {dims}"
        )
        # VACUUM sets the visibility map, without which the covering indexes
        # cannot answer index-only scans (autovacuum would, minutes later).
        cursor.execute("VACUUM ANALYZE")


def _tsvector(terms: list[str]) -> str:
    # Terms come from the safe alphabet (no quotes or backslashes).
    return " ".join(f"'{t}':{min(i, 16383)}" for i, t in enumerate(terms, start=1))


def run_benchmark(queries: list[str], embedder: EmbeddingProvider) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    from documents.models import Document
    from search.ranking.backends import SearchMode, get_search_backend
    from search.ranking.backends.semantic import SemanticBackend, clear_query_cache, embed_query
    from search.ranking.query import parse_query

    user, _ = get_user_model().objects.get_or_create(
        username="benchmark", defaults={"is_superuser": True, "is_staff": True}
    )
    queryset = Document.objects.visible_to(user)
    parsed = [parse_query(q) for q in queries]
    for q in parsed[:5]:  # Warm caches and the model.
        for mode in SearchMode:
            get_search_backend(mode).search(q, queryset=queryset, limit=10)
    modes: dict[str, dict[str, float]] = {}
    embed_ms: list[float] = []
    for mode in SearchMode:
        clear_query_cache()  # Every timed search embeds its query.
        latencies = []
        for q in parsed:
            started = time.perf_counter()
            result = get_search_backend(mode).search(q, queryset=queryset, limit=10)
            latencies.append((time.perf_counter() - started) * 1000)
            if "embed_ms" in result.timings and mode is SearchMode.SEMANTIC:
                embed_ms.append(result.timings["embed_ms"])
        modes[mode.value] = _percentiles(latencies)
    backend = SemanticBackend()
    index_ms, exact_ms, recalls = [], [], []
    for q in parsed:
        vector, _ = embed_query(q.semantic_text)
        started = time.perf_counter()
        approx, _ = backend._nearest(q, vector, queryset=queryset, limit=10)
        index_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        exact, _ = backend._nearest(
            q, dataclasses.replace(vector, exact=True), queryset=queryset, limit=10
        )
        exact_ms.append((time.perf_counter() - started) * 1000)
        truth = {row[1] for row in exact}  # chunk ids of the true nearest
        found = {row[1] for row in approx}
        recalls.append(len(truth & found) / max(len(truth), 1))
    index_p = _percentiles(index_ms)
    exact_p = _percentiles(exact_ms)
    return {
        "model": embedder.name,
        "queries": len(parsed),
        "ef_search": settings.SEARCH_HNSW_EF_SEARCH,
        "embed_ms": _percentiles(embed_ms or [0.0]),
        "modes": modes,
        "recall_at_10": statistics.mean(recalls),
        "index_ms": index_p,
        "exact_ms": exact_p,
        "speedup": exact_p["p50"] / max(index_p["p50"], 1e-6),
    }
