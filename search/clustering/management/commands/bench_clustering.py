"""Time a clustering run over synthetic documents in a database of its own."""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand, CommandParser

from config.database import switch_database

#: The model name the synthetic vectors are stored under.
BENCH_MODEL = "bench-synthetic"


class Command(BaseCommand):
    help = (
        "Create N synthetic documents (topic vectors and texts) in the database "
        "<name>_bench_clustering and time a clustering run over them, the way the "
        "Celery task runs it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--documents", type=int, default=10_000)
        parser.add_argument("--dimensions", type=int, default=384)
        parser.add_argument("--topics", type=int, default=12)
        parser.add_argument("--algorithm", default="auto", choices=["kmeans", "auto", "hdbscan"])
        parser.add_argument("--k", type=int, default=12)
        parser.add_argument("--k-min", type=int, default=2)
        parser.add_argument("--k-max", type=int, default=16)

    def handle(self, *args: Any, **options: Any) -> None:
        from django.conf import settings
        from django.core.management import call_command

        switch_database(settings.DATABASES["default"]["NAME"] + "_bench_clustering")
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        created = _ensure_corpus(options["documents"], options["dimensions"], options["topics"])
        if created:
            self.stdout.write(
                f"Created {created} synthetic documents in {time.perf_counter() - started:.1f}s"
            )
        self._bench(options)

    def _bench(self, options: dict[str, Any]) -> None:
        from search.clustering.models import ClusteringRun
        from search.clustering.selectors import clustering_inputs
        from search.clustering.services import clustering_run_execute

        run = ClusteringRun.objects.create(
            algorithm=options["algorithm"],
            k=options["k"],
            k_min=options["k_min"],
            k_max=options["k_max"],
            embedding_model=BENCH_MODEL,
        )
        started = time.perf_counter()
        inputs = clustering_inputs(run=run)
        read = time.perf_counter() - started
        started = time.perf_counter()
        # Synchronously, as the worker would: no broker, same code path.
        clustering_run_execute(run_id=run.pk)
        total = time.perf_counter() - started
        run.refresh_from_db()
        self.stdout.write(
            f"{len(inputs.document_ids)} documents x {inputs.vectors.shape[1]} dims, "
            f"{options['algorithm']}: {run.status} in {total:.1f}s "
            f"(reading embeddings alone {read:.1f}s); {run.clusters.count()} clusters, "
            f"silhouette {run.silhouette if run.silhouette is None else round(run.silhouette, 3)}"
        )
        if run.error:
            self.stdout.write(f"error: {run.error}")


def _ensure_corpus(n: int, dims: int, topics: int) -> int:
    """(Re)create the synthetic corpus unless one of this size exists."""
    from documents.models import Document, content_hash_of

    existing = Document.objects.filter(embedding_model=BENCH_MODEL)
    if existing.count() == n and not Document.objects.exclude(embedding_model=BENCH_MODEL).exists():
        return 0
    Document.objects.all().delete()
    rng = np.random.default_rng(42)
    words = random.Random(42)
    vocab = [_word(words) for _ in range(topics * 150 + 600)]
    common, topical = (
        vocab[:600],
        [vocab[600 + t * 150 : 600 + (t + 1) * 150] for t in range(topics)],
    )
    centres = rng.normal(size=(topics, dims))
    batch: list[Document] = []
    for i in range(n):
        topic = i % topics
        vector = centres[topic] + rng.normal(scale=1.0, size=dims)
        vector /= np.linalg.norm(vector)
        text = " ".join(
            words.choice(topical[topic]) if words.random() < 0.4 else words.choice(common)
            for _ in range(400)
        )
        title = " ".join(words.choices(topical[topic], k=4)).title()
        batch.append(
            Document(
                title=title,
                text=text,
                content_hash=content_hash_of(title, text),
                embedded_hash=content_hash_of(title, text),
                status=Document.Status.READY,
                embedding=vector.tolist(),
                embedding_model=BENCH_MODEL,
                source_type=Document.SourceType.TEXT,
                language="en",
            )
        )
    Document.objects.bulk_create(batch, batch_size=1000)
    return n


def _word(rng: random.Random) -> str:
    syllables = [
        "ka",
        "lo",
        "mi",
        "ren",
        "sto",
        "vel",
        "dra",
        "qui",
        "bor",
        "tan",
        "ex",
        "ul",
        "pha",
        "gri",
        "mon",
        "sel",
    ]
    return "".join(rng.choices(syllables, k=rng.randint(2, 4)))
