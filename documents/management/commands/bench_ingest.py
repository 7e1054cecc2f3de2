"""Benchmark the ingestion pipeline against the bare embedding model.

With ``--workers 1,2`` the same documents are also indexed by real Celery
worker processes (N at a time, one task each) through Redis, to measure how
indexing throughput scales with workers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.database import switch_database
from documents.embeddings import (
    COMPANION_LANGUAGES,
    EmbeddingProvider,
    get_companion,
    get_embedder,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from celery import Celery

#: Seconds a worker process may take to consume (Django and Celery start; the
#: model loads later, on its first task).
WORKER_START_TIMEOUT: Final = 120.0
POLL_INTERVAL: Final = 0.25
#: Tasks per worker of the largest run, when --task-batch is not given: few
#: enough to keep the model's batches large, enough to keep every worker busy.
TASKS_PER_WORKER: Final = 4
LOG_TAIL: Final = 3000
#: How Celery logs a task that raised (its traceback follows).
TASK_FAILED: Final = " raised unexpected: "


class Command(BaseCommand):
    help = (
        "Index a corpus through the full pipeline (chunk, analyse, embed, store) "
        "and embed the same chunks with the bare model in the same run; print "
        "chunks/s for both and their ratio. With --workers, index the same "
        "documents again with N real Celery workers on Redis for each N. Uses "
        "a separate database."
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
        parser.add_argument(
            "--workers",
            type=_worker_counts,
            default=[],
            help="Comma list of worker counts (e.g. 1,2): index the documents with "
            "that many Celery worker processes, each --concurrency 1.",
        )
        parser.add_argument(
            "--pool",
            choices=("prefork", "solo"),
            default="prefork",
            help="The workers' pool (default prefork: one child process each).",
        )
        parser.add_argument(
            "--task-batch",
            type=int,
            default=0,
            help="Documents per task in the worker runs (default: about "
            f"{TASKS_PER_WORKER} tasks per worker of the largest run, at most "
            "EMBEDDING_TASK_BATCH).",
        )
        parser.add_argument(
            "--broker",
            default="",
            help="Redis URL for the worker runs (default: CELERY_BROKER_URL, "
            "else redis://127.0.0.1:6379/0). The bench uses queues of its own.",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=600.0,
            help="Seconds each worker run may take to index everything.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        corpus: Path = options["corpus"]
        if not corpus.is_file():
            raise CommandError(f"{corpus}: no such corpus file")
        workers: list[int] = options["workers"]
        broker = options["broker"] or settings.CELERY_BROKER_URL or "redis://127.0.0.1:6379/0"
        if workers:
            _check_redis(broker)
        rows = _read_corpus(corpus, options["documents"])
        embedder = get_embedder()
        switch_database(f"{settings.DATABASES['default']['NAME']}_bench_ingest")
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        result = _bench_in_process(rows, embedder)
        if workers:
            batch = options["task_batch"] or min(
                settings.EMBEDDING_TASK_BATCH,
                math.ceil(len(rows) / (TASKS_PER_WORKER * max(workers))),
            )
            bench = _WorkerBench(
                broker=broker, pool=options["pool"], task_batch=batch, timeout=options["timeout"]
            )
            with _exit_on_sigterm():
                runs = [bench.run(n, rows) for n in workers]
            result.update(_workers_summary(runs, bench))
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        self.stdout.write(_report(result))


def _bench_in_process(rows: list[tuple[str, str]], embedder: EmbeddingProvider) -> dict[str, Any]:
    """Index ``rows`` eagerly in this process, then bare-encode the same chunk texts."""
    from config.celery import app
    from documents.analysis import analyze_many
    from documents.models import Chunk, Document
    from documents.services import document_create, documents_index_queue

    app.conf.task_always_eager = True  # Measure this process, not a worker.
    Document.objects.all().delete()
    # One-time loads are not throughput: the model's weights and the Korean
    # analyser (Kiwi builds its model on first use, seconds of a short run),
    # as the worker runs warm up with a document of their own.
    companion = get_companion()
    for model in (embedder, companion):
        if model is not None:
            model.embed_texts(["warm up the model"] * 8)
    analyze_many(["형태소 분석기를 미리 불러옵니다", "warm up the analyser"])
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
    companion_inputs = _embed_inputs(companion, COMPANION_LANGUAGES) if companion else []
    started = time.perf_counter()
    embedder.embed_texts(inputs)
    if companion is not None:
        companion.embed_texts(companion_inputs)
    bare_seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "model": embedder.name,
        "companion": companion.name if companion else None,
        "companion_chunks": len(companion_inputs),
        "documents": len(rows),
        "chunks": chunks,
        "pipeline_chunks_per_s": round(chunks / pipeline_seconds, 1),
        "bare_encode_chunks_per_s": round(len(inputs) / bare_seconds, 1),
        "pipeline_seconds": round(pipeline_seconds, 2),
        "bare_seconds": round(bare_seconds, 2),
    }
    result["ratio"] = round(result["pipeline_chunks_per_s"] / result["bare_encode_chunks_per_s"], 3)
    return result


def _report(result: dict[str, Any]) -> str:
    companion = (
        f", companion {result['companion']} on {result['companion_chunks']} English chunks"
        if result["companion"]
        else ""
    )
    lines = [
        f"{result['documents']} documents, {result['chunks']} chunks,"
        f" model {result['model']}{companion}",
        f"full pipeline : {result['pipeline_chunks_per_s']:>8} chunks/s"
        f" ({result['pipeline_seconds']:.1f} s: save, chunk, analyse, embed, store)",
        f"bare encode   : {result['bare_encode_chunks_per_s']:>8} chunks/s"
        f" ({result['bare_seconds']:.1f} s: the models' encode on the same chunk texts)",
        f"ratio         : {result['ratio']:>8}  (target >= 0.85)",
    ]
    if runs := result.get("workers"):
        lines.append(
            f"Celery workers ({result['worker_pool']}, --concurrency 1 each; "
            f"{result['worker_tasks']} tasks of up to {result['worker_task_batch']} "
            "documents; queueing to last chunk stored):"
        )
        lines += [
            f"N={run['workers']:<3}: {run['chunks_per_s']:>8} chunks/s ({run['seconds']:.1f} s, "
            f"{run['chunks']} chunks, {run['embedding_threads']} embedding threads per worker, "
            f"{run['model_loads']} model loads)"
            for run in runs
        ]
        for key, ratio in result["workers_ratio"].items():
            many, few = key.split("/")
            lines.append(f"N={many} / N={few}: {ratio:>8}")
    return "\n".join(lines)


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


def _embed_inputs(embedder: EmbeddingProvider, languages: Sequence[str] | None = None) -> list[str]:
    """The exact texts the pipeline embedded with ``embedder``: title prefix +
    chunk text, of documents in ``languages`` (None: every chunk)."""
    from documents.models import Chunk
    from documents.services.indexing import title_prefix

    chunks = Chunk.objects.all()
    if languages is not None:
        chunks = chunks.filter(document__language__in=languages)
    prefixes: dict[str, str] = {}
    inputs = []
    for title, text in chunks.order_by("document_id", "position").values_list(
        "document__title", "text"
    ):
        if title not in prefixes:
            prefixes[title] = title_prefix(title, embedder)[0]
        inputs.append(prefixes[title] + text)
    return inputs


# --- Celery workers -------------------------------------------------------------


def _worker_counts(value: str) -> list[int]:
    """``--workers 1,2``: distinct positive worker counts, in the order given."""
    try:
        counts = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a comma list of worker counts such as 1,2"
        )
    return list(dict.fromkeys(counts))


def _check_redis(url: str) -> None:
    """Fail with a clear message unless ``url`` is a Redis server that answers."""
    import redis

    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise CommandError(f"--workers needs a Redis broker, not {url!r} (see --broker)")
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise CommandError(
            f"Redis is not reachable at {url} ({exc}); start it "
            "(redis-server --daemonize yes) or name another with --broker"
        ) from exc
    finally:
        client.close()


@contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into ``SystemExit``, so that the workers are stopped on the way out."""

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _workers_summary(runs: list[dict[str, Any]], bench: _WorkerBench) -> dict[str, Any]:
    """The worker runs, and each run's chunks/s over the run with the fewest workers."""
    base = min(runs, key=lambda run: run["workers"])
    return {
        "worker_pool": bench.pool,
        "worker_task_batch": bench.task_batch,
        "worker_tasks": runs[0]["tasks"],
        "workers": runs,
        "workers_ratio": {
            f"{run['workers']}/{base['workers']}": round(
                run["chunks_per_s"] / base["chunks_per_s"], 3
            )
            for run in runs
            if run is not base
        },
    }


def _database_url(url: str, name: str) -> str:
    """``url`` (a ``DATABASE_URL``) naming the database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(name, safe="")))


class _WorkerProcess:
    """One ``celery worker`` (``--concurrency 1``) in a process group of its own."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command,
                cwd=settings.BASE_DIR,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Its pool's children share its group.
            )

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def died(self) -> str | None:
        """Why the worker is gone (exit code and log tail), or None while it runs."""
        if (code := self.process.poll()) is None:
            return None
        return f"worker exited with code {code}; {self.log.name}:\n{self.text()[-LOG_TAIL:]}"

    def failed(self) -> str | None:
        """The log tail if a task failed (say, no database), else None.

        The indexing task records only embedding failures on the documents;
        any other error leaves them pending, so the log is the witness.
        """
        text = self.text()
        if (at := text.find(TASK_FAILED)) < 0:
            return None
        return f"a task failed; {self.log.name}:\n{text[max(0, at - 200) :][:LOG_TAIL]}"

    def stop(self) -> None:
        """SIGTERM to the group (the worker's warm shutdown), SIGKILL if it lingers."""
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        with suppress(ProcessLookupError):  # Pool children left behind.
            os.killpg(self.process.pid, signal.SIGKILL)


class _WorkerBench:
    """Index the same documents with N real workers, for each N, on queues of its own.

    Each worker consumes the bench's shared queue and one of its own; a
    warm-up document sent to each worker's own queue loads its model before
    timing starts. Every process loads the model once: the provider is cached
    per process (``documents.embeddings.get_embedder``) and the bench sets no
    ``worker_max_tasks_per_child``, so a prefork child is never replaced.
    """

    def __init__(self, *, broker: str, pool: str, task_batch: int, timeout: float) -> None:
        self.broker, self.pool, self.task_batch, self.timeout = broker, pool, task_batch, timeout
        self.queue = f"bench-ingest-{uuid.uuid4().hex[:12]}"

    def run(self, n: int, rows: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """Index ``rows`` with ``n`` workers; return chunks/s and what was measured."""
        from documents.models import Chunk, Document
        from documents.services import document_create

        Document.objects.all().delete()
        ids = [
            document_create(title=title[:500] or "Untitled", text=text, index=False).pk
            for title, text in rows
        ]
        threads = settings.EMBEDDING_THREADS or max(1, (os.cpu_count() or 1) // n)
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as logs, self._sending() as app:
            workers: list[_WorkerProcess] = []
            try:
                for index in range(n):
                    workers.append(self._start(index, Path(logs), threads=threads))
                self._warm_up(app, workers)
                started = time.perf_counter()
                tasks = self._queue(ids)
                self._wait_indexed(ids, workers, what=f"{n} worker(s)")
                seconds = time.perf_counter() - started
                # The configured model's loads (a companion loads once more).
                loaded = f"Loaded embedding provider {get_embedder().name}"
                loads = sum(w.text().count(loaded) for w in workers)
            finally:
                for worker in workers:
                    worker.stop()
                self._forget_queues(n)
        chunks = Chunk.objects.filter(document_id__in=ids).count()
        return {
            "workers": n,
            "tasks": tasks,
            "embedding_threads": threads,
            "chunks": chunks,
            "seconds": round(seconds, 2),
            "chunks_per_s": round(chunks / seconds, 1),
            "model_loads": loads,
        }

    @contextmanager
    def _sending(self) -> Iterator[Celery]:
        """This process's Celery app sending to the bench's queue on Redis, not eagerly."""
        from config.celery import app

        names = ("task_always_eager", "broker_url", "task_default_queue")
        saved = {name: app.conf[name] for name in names}
        _reset_broker_pools(app)
        app.conf.update(
            task_always_eager=False, broker_url=self.broker, task_default_queue=self.queue
        )
        try:
            yield app
        finally:
            _reset_broker_pools(app)
            app.conf.update(saved)

    def _start(self, index: int, logs: Path, *, threads: int) -> _WorkerProcess:
        """Start worker ``index`` (the last started is waited for by ``_warm_up``)."""
        from django.db import connections

        db = connections["default"].settings_dict
        env = {
            **os.environ,
            # Celery's Django fixup reads the settings from the environment:
            # the bench's database (switched from the users'), its broker.
            "DATABASE_NAME": db["NAME"],
            "CELERY_BROKER_URL": self.broker,
            "EMBEDDING_THREADS": str(threads),
            "LOG_LEVEL": "INFO",  # Its " ready." line and model loads.
        }
        if url := env.get("DATABASE_URL"):
            env["DATABASE_URL"] = _database_url(url, db["NAME"])
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            f"--pool={self.pool}", "--concurrency=1", "--loglevel=INFO",
            "-Q", f"{self.queue},{self.queue}.w{index}",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            f"--hostname=bench{index}-{self.queue}@%h",
        ]  # fmt: skip
        return _WorkerProcess(command, env, logs / f"worker-{index}.log")

    def _warm_up(self, app: Celery, workers: list[_WorkerProcess]) -> None:
        """Wait until every worker consumes, then have each index one document."""
        from documents.models import Document
        from documents.services import INDEX_TASK, document_create

        deadline = time.monotonic() + WORKER_START_TIMEOUT
        for worker in workers:
            while " ready." not in worker.text():
                if reason := worker.died():
                    raise CommandError(reason)
                if time.monotonic() > deadline:
                    raise CommandError(
                        f"worker not ready after {WORKER_START_TIMEOUT:.0f} s; "
                        f"{worker.log.name}:\n{worker.text()[-LOG_TAIL:]}"
                    )
                time.sleep(POLL_INTERVAL)
        warm_ups: list[int] = []
        for index in range(len(workers)):
            document = document_create(
                title=f"Warm-up {index}",
                text="This document loads the embedding model before timing starts.",
                index=False,
            )
            warm_ups.append(document.pk)
            app.send_task(INDEX_TASK, args=[[document.pk], False], queue=f"{self.queue}.w{index}")
        self._wait_indexed(warm_ups, workers, what="the warm-up")
        Document.objects.filter(pk__in=warm_ups).delete()

    def _queue(self, ids: list[int]) -> int:
        """Queue indexing of ``ids`` in tasks of ``task_batch``; return how many tasks."""
        from documents.services import documents_index_queue

        # At most EMBEDDING_TASK_BATCH each, so every call sends one task.
        batch = min(self.task_batch, settings.EMBEDDING_TASK_BATCH)
        for start in range(0, len(ids), batch):
            documents_index_queue(document_ids=ids[start : start + batch])
        return math.ceil(len(ids) / batch)

    def _wait_indexed(self, ids: list[int], workers: list[_WorkerProcess], *, what: str) -> None:
        """Poll until no document of ``ids`` waits; fail if one failed or a worker died."""
        from documents.models import Document

        waiting = (Document.Status.PENDING, Document.Status.PROCESSING)
        documents = Document.objects.filter(pk__in=ids)
        deadline = time.monotonic() + self.timeout
        while left := documents.filter(status__in=waiting).count():
            for worker in workers:
                if reason := worker.died() or worker.failed():
                    raise CommandError(f"{what}: {left} documents not indexed; {reason}")
            if time.monotonic() > deadline:
                logs = "\n".join(f"{w.log.name}:\n{w.text()[-LOG_TAIL:]}" for w in workers)
                raise CommandError(
                    f"{what}: {left} of {len(ids)} documents not indexed after "
                    f"{self.timeout:.0f} s (see --timeout)\n{logs}"
                )
            time.sleep(POLL_INTERVAL)
        failed = documents.filter(status=Document.Status.FAILED)
        if error := failed.values_list("last_error", flat=True).first():
            raise CommandError(f"{what}: {failed.count()} documents failed to index: {error}")

    def _forget_queues(self, n: int) -> None:
        """Delete the run's queues, their bindings and any unacknowledged message."""
        import redis

        names = {self.queue, *(f"{self.queue}.w{i}" for i in range(n))}
        client = redis.Redis.from_url(self.broker)
        try:
            for tag, payload in client.hgetall("unacked").items():
                if json.loads(payload)[2] in names:  # [message, exchange, routing key]
                    client.hdel("unacked", tag)
                    client.zrem("unacked_index", tag)
            for name in names:
                client.delete(name, f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}")
        finally:
            client.close()


def _reset_broker_pools(app: Celery) -> None:
    """Drop pooled broker connections so the next send reads ``broker_url`` again.

    The eager run acquired a producer from the pool too, bound to the eager
    (empty) broker URL; kombu keeps pools in a process-wide registry. The same
    as ``tests/worker.py``'s ``reset_broker_pools``.
    """
    from kombu import pools

    pools.reset()
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
