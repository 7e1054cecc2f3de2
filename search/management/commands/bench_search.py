"""Search latency benchmark on a corpus of 100k+ chunks, at one size or growing."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test.utils import override_settings
from pgvector import Vector
from tqdm import tqdm

from config.database import switch_database
from documents.embeddings import EmbeddingProvider, get_embedder

if TYPE_CHECKING:
    from search.ranking.query import ParsedQuery

CHUNKS_PER_DOCUMENT: Final = 5
BASE_TEXTS: Final = 3000
#: Documents written per COPY batch.
BATCH: Final = 1000
#: The size growth ratios are taken against (the README's reference size).
REFERENCE_CHUNKS: Final = 100_000
#: The chunk HNSW indexes' build parameters, as migration documents.0008.
HNSW_M: Final = 16
HNSW_EF_CONSTRUCTION: Final = 200


class Command(BaseCommand):
    help = (
        "Build (or reuse) a corpus of --chunks chunks in a separate database, run "
        "queries in every mode and print p50/p95 latency, HNSW recall@10 against "
        "an exact scan, and the index's speed-up over that scan. --sizes grows one "
        "corpus through several sizes and adds index build times and sizes (vector "
        "and halfvec) and the growth of keyword and hybrid p95."
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
        parser.add_argument(
            "--sizes",
            type=_sizes,
            default=None,
            help="Comma-separated chunk counts (e.g. 100000,300000): one corpus is "
            "rebuilt at the first and extended to each next, measured at each.",
        )
        parser.add_argument("--queries", type=int, default=300)
        parser.add_argument(
            "--recall-queries",
            type=int,
            default=0,
            help="Queries of the recall check (exact scans are slow at 1M): 0 = all.",
        )
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
        queries = _queries(dataset, options["queries"])
        recall_queries = options["recall_queries"] or len(queries)
        if options["sizes"]:
            self._grow(dataset, embedder, options["sizes"], queries, recall_queries, load)
            return
        from documents.models import Chunk

        have = Chunk.objects.filter(embedding_model=embedder.name).count()
        if options["rebuild"] or have < options["chunks"]:
            corpus = Corpus.load(dataset, embedder)
            corpus.extend(options["chunks"], out=self.stderr._out, rebuild=True)
            # The vector index alone, as ever: --sizes measures halfvec.
            corpus.build_indexes(out=self.stderr._out, casts=("vector",))
        result = run_benchmark(queries, embedder, recall_queries=recall_queries)
        result["load_average"] = load
        result["cpus"] = os.cpu_count()
        result["chunks"] = Chunk.objects.count()
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        self._print(result)

    def _grow(
        self,
        dataset: Path,
        embedder: EmbeddingProvider,
        sizes: list[int],
        queries: list[str],
        recall_queries: int,
        load: float,
    ) -> None:
        """Build the corpus at each size in turn and measure it there."""
        from documents.models import Chunk

        out = self.stderr._out
        corpus = Corpus.load(dataset, embedder)
        reports: list[dict[str, Any]] = []
        for number, size in enumerate(sizes):
            started = time.perf_counter()
            corpus.extend(size, out=out, rebuild=number == 0)
            build = corpus.build_indexes(out=out)
            build["corpus_s"] = time.perf_counter() - started
            result = run_benchmark(queries, embedder, recall_queries=recall_queries)
            result.update(build, chunks=Chunk.objects.count(), load_average=load)
            result["cpus"] = os.cpu_count()
            reports.append(result)
            if not self._json:
                self._print(result)
            load = os.getloadavg()[0]
        growth = growth_ratios(reports)
        if self._json:
            self.stdout.write(json.dumps({"sizes": reports, "growth": growth}, indent=2))
            return
        self._print_growth(reports, growth)

    def execute(self, *args: Any, **options: Any) -> Any:
        self._json = bool(options.get("json"))
        return super().execute(*args, **options)

    def _print(self, r: dict[str, Any]) -> None:
        self.stdout.write(
            f"\n{r['chunks']} chunks, {r['queries']} queries, model {r['model']}"
            + (f" + companion {r['companion']}" if r.get("companion") else "")
            + f", hnsw.ef_search={r['ef_search']}"
        )
        self.stdout.write(
            f"load average at start: {r['load_average']:.2f} on {r['cpus']} CPUs"
            + ("  (busy machine: latencies are inflated)" if r["load_average"] > 1 else "")
        )
        self.stdout.write(
            f"query embedding: p50 {r['embed_ms']['p50']:.1f} ms, p95 {r['embed_ms']['p95']:.1f} ms"
            + (" (both models, in parallel)" if r.get("companion") else "")
        )
        self.stdout.write(
            f"{'mode':<18}{'p50 ms':>10}{'p95 ms':>10}  (including the query embedding)"
        )
        for mode, m in r["modes"].items():
            self.stdout.write(f"{mode:<18}{m['p50']:>10.1f}{m['p95']:>10.1f}")
        self.stdout.write(
            f"HNSW recall@10 vs exact scan: {r['recall_at_10']:.3f}"
            + (f" (halfvec {r['halfvec_recall_at_10']:.3f})" if "halfvec_recall_at_10" in r else "")
            + f"\nnearest-chunk SQL: index p50 {r['index_ms']['p50']:.1f} ms,"
            f" exact p50 {r['exact_ms']['p50']:.1f} ms, speed-up {r['speedup']:.1f}x"
        )
        if "indexes" in r:
            for cast, index in r["indexes"].items():
                self.stdout.write(
                    f"{cast} HNSW index: built in {index['build_s']:.1f} s,"
                    f" {index['bytes'] / 2**20:.1f} MiB"
                )

    def _print_growth(self, reports: list[dict[str, Any]], growth: dict[str, float]) -> None:
        self.stdout.write(
            f"\n{'chunks':>9}{'kw p95':>9}{'sem p95':>9}{'hyb p95':>9}{'hyb/half p95':>13}"
            f"{'recall':>8}{'half rec':>9}{'vec idx s':>10}{'vec MiB':>9}"
            f"{'half idx s':>11}{'half MiB':>9}"
        )
        for r in reports:
            modes, indexes = r["modes"], r["indexes"]
            self.stdout.write(
                f"{r['chunks']:>9}{modes['keyword']['p95']:>9.1f}"
                f"{modes['semantic']['p95']:>9.1f}{modes['hybrid']['p95']:>9.1f}"
                f"{modes.get('hybrid/halfvec', {}).get('p95', float('nan')):>13.1f}"
                f"{r['recall_at_10']:>8.3f}{r.get('halfvec_recall_at_10', float('nan')):>9.3f}"
                f"{indexes['vector']['build_s']:>10.1f}{indexes['vector']['bytes'] / 2**20:>9.1f}"
                f"{indexes['halfvec']['build_s']:>11.1f}"
                f"{indexes['halfvec']['bytes'] / 2**20:>9.1f}"
            )
        for name, ratio in growth.items():
            self.stdout.write(f"growth of {name}: {ratio:.2f}x")


def _sizes(value: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in value.split(",") if part.strip()})
    except ValueError as error:
        raise CommandError(f"--sizes: {value!r} is not a list of chunk counts") from error
    if not sizes or sizes[0] < CHUNKS_PER_DOCUMENT:
        raise CommandError(f"--sizes: at least {CHUNKS_PER_DOCUMENT} chunks a size")
    return sizes


def growth_ratios(reports: list[dict[str, Any]]) -> dict[str, float]:
    """p95 of keyword and hybrid at the largest size over the reference size's.

    The reference is 100k chunks when measured, else the smallest size.
    """
    if len(reports) < 2:
        return {}
    reference = next((r for r in reports if r["chunks"] == REFERENCE_CHUNKS), reports[0])
    largest = reports[-1]
    label = f"{largest['chunks']}/{reference['chunks']} chunks"
    return {
        f"{mode} p95 ({label})": largest["modes"][mode]["p95"]
        / max(reference["modes"][mode]["p95"], 1e-6)
        for mode in ("keyword", "hybrid")
    }


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


@dataclasses.dataclass
class Corpus:
    """Documents of five chunks each, with real text and embedding-model vectors.

    Embedding 100k chunks takes most of an hour on two cores, so the model
    embeds ``BASE_TEXTS`` real passages and every chunk vector is a
    normalised random mixture of two of them (weights 0.55-1.0 and the rest):
    vectors stay on the model's own manifold and are all distinct. Chunk
    texts are the first passage's, so keyword search has real text too.
    Document ``n`` draws from its own seeded generator, so a corpus grown
    from 100k to 300k chunks is the one built at 300k directly.
    """

    base: list[dict[str, Any]]
    texts: list[str]
    vectors: list[Any]
    terms: list[list[str]]
    model: str
    dims: int
    #: The companion model's vectors of the same texts, mixed alike, and its
    #: name (None: no companion configured).
    companion_vectors: list[Any] | None = None
    companion: str = ""

    @classmethod
    def load(cls, dataset: Path, embedder: EmbeddingProvider) -> Corpus:
        from documents.analysis import analyze_many
        from documents.embeddings import get_companion

        rows = [
            json.loads(line)
            for line in (dataset / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        base = rows[:BASE_TEXTS]
        texts = [f"{r.get('title', '')}\n{r.get('text', '')}"[:400] for r in base]
        companion = get_companion()
        return cls(
            base=base,
            texts=texts,
            vectors=_float64(embedder.embed_texts(texts)),
            terms=analyze_many(texts),
            model=embedder.name,
            dims=embedder.dimensions,
            companion_vectors=_float64(companion.embed_texts(texts)) if companion else None,
            companion=companion.name if companion else "",
        )

    def extend(self, chunks: int, *, out: Any, rebuild: bool) -> None:
        """Grow the corpus to ``chunks`` chunks (from nothing if ``rebuild``),
        dropping the HNSW indexes first: bulk-loading into them is slower
        than building them afterwards."""
        from django.db import connection

        from documents.models import Document

        if rebuild:
            Document.objects.all().delete()
        with connection.cursor() as cursor:
            for name in _index_names(self.dims).values():
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
        have = Document.objects.count()
        documents = max(1, chunks // CHUNKS_PER_DOCUMENT)
        for start in tqdm(
            range(have, documents, BATCH), desc="building corpus", unit="k docs", file=out
        ):
            self._add_batch(range(start, min(start + BATCH, documents)))

    def _add_batch(self, numbers: range) -> None:
        from django.db import connection
        from django.utils import timezone

        from documents.analysis import document_postings
        from documents.models import Document, content_hash_of

        batch = []
        for number in numbers:
            rng = random.Random(number)
            picks = [rng.randrange(len(self.base)) for _ in range(CHUNKS_PER_DOCUMENT)]
            title = f"{self.base[picks[0]].get('title', '')[:200]} ({number})"
            text = "\n\n".join(self.texts[i] for i in picks)
            document = Document(
                title=title,
                text=text,
                content_hash=content_hash_of(title, text),
                status=Document.Status.READY,
                embedding_model=self.model,
                language=Document.Language.ENGLISH,
            )
            batch.append((document, picks, rng))
        created = Document.objects.bulk_create([d for d, _, _ in batch])
        chunk_rows: list[tuple[Any, ...]] = []
        postings: list[tuple[int, str, float, float]] = []
        for document, (_, picks, rng) in zip(created, batch, strict=True):
            offset = 0
            mixed = []
            for position, i in enumerate(picks):
                other = rng.randrange(len(self.base))
                weight = rng.uniform(0.55, 1.0)
                vector = _mix(self.vectors, i, other, weight)
                mixed.append(vector)
                companion = (
                    Vector(_mix(self.companion_vectors, i, other, weight))
                    if self.companion_vectors is not None
                    else None
                )
                chunk_rows.append(
                    (
                        document.pk,
                        position,
                        self.texts[i],
                        offset,
                        offset + len(self.texts[i]),
                        len(self.terms[i]),
                        Vector(vector),
                        self.model,
                        companion,
                        self.companion,
                        _tsvector(self.terms[i]),
                    )
                )
                offset += len(self.texts[i]) + 2
            tf, length = document_postings(
                title_terms=[], body_terms=[t for i in picks for t in self.terms[i]]
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
                " token_count, embedding, embedding_model, companion_embedding,"
                " companion_model, search_vector, created_at, updated_at) FROM STDIN"
            ) as copy:
                now = timezone.now()
                for row in chunk_rows:
                    copy.write_row((*row, now, now))

    def build_indexes(
        self, *, out: Any, casts: tuple[str, ...] = ("vector", "halfvec")
    ) -> dict[str, Any]:
        """Build the HNSW indexes of ``casts`` (migrations 0002, 0007, 0008) and
        vacuum; return each index's build time and size."""
        from django.db import connection

        indexes: dict[str, dict[str, float]] = {}
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '1GB'")
            for cast in casts:
                name = _index_names(self.dims)[cast]
                out.write(f"building the {cast} HNSW index...\n")
                started = time.perf_counter()
                cursor.execute(
                    f"CREATE INDEX {name} ON documents_chunk USING hnsw"
                    f" ((embedding::{cast}({self.dims})) {cast}_cosine_ops)"
                    f" WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
                    f" WHERE vector_dims(embedding) = {self.dims}"
                )
                build_s = time.perf_counter() - started
                cursor.execute("SELECT pg_relation_size(%s::regclass)", [name])
                indexes[cast] = {"build_s": build_s, "bytes": float(cursor.fetchone()[0])}
            # VACUUM sets the visibility map, without which the covering indexes
            # cannot answer index-only scans (autovacuum would, minutes later).
            cursor.execute("VACUUM ANALYZE")
        return {"indexes": indexes}


def _index_names(dims: int) -> dict[str, str]:
    """The chunk HNSW index of each cast, named as by migrations 0002 and 0007."""
    return {
        "vector": f"documents_chunk_embedding_{dims}_hnsw",
        "halfvec": f"documents_chunk_embedding_{dims}_halfvec_hnsw",
    }


def _float64(vectors: np.ndarray) -> list[Any]:
    return [np.asarray(v, dtype=np.float64) for v in vectors]


def _mix(vectors: list[Any], first: int, second: int, weight: float) -> Any:
    """A chunk's vector: mostly one text's, part another's, normalised."""
    vector = weight * vectors[first] + (1 - weight) * vectors[second]
    return vector / np.linalg.norm(vector)


def _tsvector(terms: list[str]) -> str:
    # Terms come from the safe alphabet (no quotes or backslashes).
    return " ".join(f"'{t}':{min(i, 16383)}" for i, t in enumerate(terms, start=1))


def run_benchmark(
    queries: list[str], embedder: EmbeddingProvider, *, recall_queries: int = 0
) -> dict[str, Any]:
    """Latency of every mode (semantic and hybrid also through halfvec when its
    index exists), and recall@10 of the index scans against exact scans."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from documents.embeddings import get_companion
    from documents.models import Document
    from search.ranking.backends import SearchMode
    from search.ranking.query import parse_query

    user, _ = get_user_model().objects.get_or_create(
        username="benchmark", defaults={"is_superuser": True, "is_staff": True}
    )
    queryset = Document.objects.visible_to(user)
    parsed = [parse_query(q) for q in queries]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_class WHERE relname = %s",
            [_index_names(embedder.dimensions)["halfvec"]],
        )
        halfvec = cursor.fetchone() is not None
    modes, embed_ms = _time_modes(parsed, queryset, list(SearchMode))
    if halfvec:
        with override_settings(SEARCH_VECTOR_TYPE="halfvec"):
            half, _ = _time_modes(parsed, queryset, [SearchMode.SEMANTIC, SearchMode.HYBRID])
        modes.update({f"{mode}/halfvec": timing for mode, timing in half.items()})
    recall = _recall(parsed[: recall_queries or len(parsed)], queryset, halfvec=halfvec)
    companion = get_companion()
    return {
        "model": embedder.name,
        "companion": companion.name if companion else None,
        "queries": len(parsed),
        "ef_search": settings.SEARCH_HNSW_EF_SEARCH,
        "keyword_common_postings": settings.SEARCH_KEYWORD_COMMON_POSTINGS,
        "embed_ms": _percentiles(embed_ms or [0.0]),
        "modes": modes,
        **recall,
    }


def _time_modes(
    parsed: list[ParsedQuery], queryset: Any, modes: list[Any]
) -> tuple[dict[str, dict[str, float]], list[float]]:
    """p50/p95 per mode, every query embedded afresh; and the embedding times."""
    from search.ranking.backends import SearchMode, get_search_backend
    from search.ranking.backends.semantic import clear_query_cache

    for q in parsed[:5]:  # Warm caches and the model.
        for mode in modes:
            get_search_backend(mode).search(q, queryset=queryset, limit=10)
    timings: dict[str, dict[str, float]] = {}
    embed_ms: list[float] = []
    for mode in modes:
        clear_query_cache()  # Every timed search embeds its query.
        latencies = []
        for q in parsed:
            started = time.perf_counter()
            result = get_search_backend(mode).search(q, queryset=queryset, limit=10)
            latencies.append((time.perf_counter() - started) * 1000)
            if "embed_ms" in result.timings and mode is SearchMode.SEMANTIC:
                embed_ms.append(result.timings["embed_ms"])
        timings[str(mode.value)] = _percentiles(latencies)
    return timings, embed_ms


def _recall(parsed: list[ParsedQuery], queryset: Any, *, halfvec: bool) -> dict[str, Any]:
    """recall@10 of the nearest chunks through the index against an exact scan."""
    from search.ranking.backends.semantic import SemanticBackend, embed_query

    backend = SemanticBackend()
    index_ms, exact_ms, recalls, half_recalls = [], [], [], []
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
        recalls.append(len(truth & {row[1] for row in approx}) / max(len(truth), 1))
        if halfvec:
            with override_settings(SEARCH_VECTOR_TYPE="halfvec"):
                half, _ = backend._nearest(q, vector, queryset=queryset, limit=10)
            half_recalls.append(len(truth & {row[1] for row in half}) / max(len(truth), 1))
    index_p = _percentiles(index_ms)
    exact_p = _percentiles(exact_ms)
    result: dict[str, Any] = {
        "recall_queries": len(parsed),
        "recall_at_10": statistics.mean(recalls),
        "index_ms": index_p,
        "exact_ms": exact_p,
        "speedup": exact_p["p50"] / max(index_p["p50"], 1e-6),
    }
    if half_recalls:
        result["halfvec_recall_at_10"] = statistics.mean(half_recalls)
    return result
