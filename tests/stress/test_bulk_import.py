"""Bulk import: 10,000 small documents through ``import_documents`` and a real worker.

Runs under ``make stress`` only. The import runs in this process and queues
one task per ``EMBEDDING_TASK_BATCH`` documents on the real Redis; a worker
with two processes (prefork, ``--concurrency=2``, the fake embedder) indexes
them in the test database. Afterwards the counts are exact: every document
is there once, ready, with the one chunk its short text makes.

The counts and timings go to ``test-artifacts/bulk_import.json``, also when
the test fails (then what was measured until it stopped); ``make stress``
prints them at the end (``conftest.py``).
"""

from __future__ import annotations

import io
import math
import re
import time
from typing import TYPE_CHECKING, Any

import pytest
from django.conf import settings
from django.core.management import call_command

from documents.embeddings import FakeProvider
from documents.ingestion import chunk_text, extract_text
from documents.models import Chunk, Document, DocumentTerm
from documents.services.indexing import title_prefix
from tests.stress.artifacts import BULK_IMPORT, stopped_by, write_figures
from tests.worker import Worker, redis_queue, running_worker, tasks_sent_to, wait_for

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.stress, pytest.mark.django_db(transaction=True)]

DOCUMENTS = 10_000
FILES_PER_FOLDER = 500
#: Importing and indexing take about a minute each on an idle machine.
INDEXED_TIMEOUT = 20 * 60.0

_TOPICS = (
    "leave", "travel", "payroll", "security", "equipment", "training", "benefits",
    "onboarding", "expenses", "compliance", "facilities", "procurement",
)  # fmt: skip
_SUCCEEDED = re.compile(r"documents\.tasks\.documents_embed\[[0-9a-f-]+\] succeeded in")
_IMPORT_FINISHED = re.compile(r"Import finished: (.*)\.")


def memo(n: int) -> str:
    """A short memo, unique by its number: one chunk with any embedder budget."""
    topic = _TOPICS[n % len(_TOPICS)]
    return (
        f"Memo {n}: {topic}\n\n"
        f"Requests about {topic} for case {n} go through the portal. "
        f"Reference code m{n:05d}."
    )


def expected_chunks(corpus: Path) -> int:
    """Chunk the texts as the pipeline would (fake embedder, default settings).

    The budget is the smallest the pipeline can give a chunk with these
    titles, so each memo coming out as one chunk here means one chunk there.
    """
    embedder = FakeProvider()
    total = 0
    for path in sorted(corpus.rglob("*.txt")):
        extracted = extract_text(path.read_bytes(), filename=path.name)
        _prefix, prefix_tokens = title_prefix(extracted.title, embedder)
        budget = embedder.max_tokens - prefix_tokens
        if settings.CHUNK_MAX_TOKENS:
            budget = min(budget, settings.CHUNK_MAX_TOKENS)
        chunks = chunk_text(
            extracted.text,
            count_tokens=embedder.count_tokens,
            max_tokens=budget,
            overlap_tokens=min(settings.CHUNK_OVERLAP_TOKENS, budget // 4),
        )
        assert len(chunks) == 1, (path, chunks)
        total += len(chunks)
    return total


def import_counts(output: str) -> dict[str, int]:
    """``import_documents``' summary line as counts: imported, updated, unchanged, failed."""
    match = _IMPORT_FINISHED.search(output)
    if match is None:
        return {}
    return {
        outcome: int(count)
        for count, outcome in (part.split(" ", 1) for part in match.group(1).split(", "))
    }


def record_counts(figures: dict[str, Any], worker: Worker | None) -> None:
    """Add what the database and the worker's log hold now to ``figures``."""
    try:
        figures.update(
            ready=Document.objects.filter(status=Document.Status.READY).count(),
            failed_indexing=Document.objects.filter(status=Document.Status.FAILED).count(),
            stored=Document.objects.count(),
            chunks=Chunk.objects.count(),
        )
    except Exception as exc:  # Keep the test's own failure, not this one.
        figures["counts_error"] = stopped_by(exc)
    if worker is not None:
        figures["tasks_succeeded"] = len(_SUCCEEDED.findall(worker.log()))


def record_rates(figures: dict[str, Any], marks: dict[str, float]) -> None:
    """Seconds and documents per second of each phase that ended (``marks``)."""
    phases = {
        "import": ("started", "imported"),
        "index": ("imported", "indexed"),
        "total": ("started", "indexed"),
    }
    for key, (start, end) in phases.items():
        if start in marks and end in marks:
            seconds = marks[end] - marks[start]
            figures[f"{key}_s"] = round(seconds, 1)
            figures[f"{key}_docs_per_s"] = round(DOCUMENTS / seconds, 1) if seconds else None


def test_bulk_import_of_10000_documents_through_the_worker(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    for n in range(DOCUMENTS):
        folder = corpus / f"batch-{n // FILES_PER_FOLDER:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"memo-{n:05d}.txt").write_text(memo(n), encoding="utf-8")
    chunks_wanted = expected_chunks(corpus)
    tasks_wanted = math.ceil(DOCUMENTS / settings.EMBEDDING_TASK_BATCH)
    figures: dict[str, Any] = {
        "documents": DOCUMENTS,
        "tasks": tasks_wanted,
        "task_batch": settings.EMBEDDING_TASK_BATCH,
        "worker": "prefork --concurrency=2",
        "embedding_provider": FakeProvider.name,
    }
    marks: dict[str, float] = {}
    worker: Worker | None = None
    try:
        with (
            redis_queue() as queue,
            tasks_sent_to(queue),
            running_worker(queue, tmp_path / "worker.log", pool="prefork", concurrency=2) as worker,
        ):
            import_and_index(corpus, worker, figures, marks, tasks_wanted=tasks_wanted)
    except BaseException as exc:
        figures["stopped_by"] = stopped_by(exc)
        raise
    finally:
        record_rates(figures, marks)
        record_counts(figures, worker)
        write_figures(BULK_IMPORT, figures)
    print(
        f"\nbulk import of {DOCUMENTS} documents, worker --concurrency=2, fake embedder, "
        f"{tasks_wanted} tasks of {settings.EMBEDDING_TASK_BATCH}:\n"
        f"  import_documents (read, extract, save): {figures['import_s']:7.1f} s "
        f"{figures['import_docs_per_s']:7.1f} docs/s\n"
        f"  indexing after the import:              {figures['index_s']:7.1f} s "
        f"{figures['index_docs_per_s']:7.1f} docs/s\n"
        f"  end to end:                             {figures['total_s']:7.1f} s "
        f"{figures['total_docs_per_s']:7.1f} docs/s"
    )

    assert Document.objects.count() == DOCUMENTS
    assert Document.objects.values("source_path").distinct().count() == DOCUMENTS
    assert not Document.objects.exclude(status=Document.Status.READY).exists()
    assert Document.objects.filter(status=Document.Status.READY).count() == DOCUMENTS
    assert Chunk.objects.count() == chunks_wanted == DOCUMENTS
    assert Chunk.objects.values("document").distinct().count() == DOCUMENTS
    assert not Chunk.objects.exclude(position=0).exists()
    assert not Chunk.objects.exclude(embedding_model=FakeProvider.name).exists()
    assert DocumentTerm.objects.values("document").distinct().count() == DOCUMENTS


def import_and_index(
    corpus: Path,
    worker: Worker,
    figures: dict[str, Any],
    marks: dict[str, float],
    *,
    tasks_wanted: int,
) -> None:
    """Import ``corpus``, then wait until the worker has indexed all of it.

    ``marks`` gets the times the import started and ended and indexing
    ended, ``figures`` the import's counts, as soon as each is known.
    """

    def ready() -> int:
        return Document.objects.filter(status=Document.Status.READY).count()

    output = io.StringIO()
    marks["started"] = time.perf_counter()
    call_command("import_documents", str(corpus), "--no-progress", stdout=output)
    marks["imported"] = time.perf_counter()
    print(output.getvalue().strip())
    counts = import_counts(output.getvalue())
    figures.update(imported=counts.get("imported"), refused=counts.get("failed"))
    assert f"Import finished: {DOCUMENTS} imported, 0 updated, 0 unchanged, 0 failed." in (
        output.getvalue()
    )
    wait_for(
        lambda: (
            ready() == DOCUMENTS or Document.objects.filter(status=Document.Status.FAILED).exists()
        ),
        timeout=INDEXED_TIMEOUT,
        interval=1.0,
        failure=lambda: f"{ready()} of {DOCUMENTS} ready after {INDEXED_TIMEOUT:.0f} s",
    )
    marks["indexed"] = time.perf_counter()
    # Let the last task's acknowledgement land before the worker stops.
    wait_for(
        lambda: len(_SUCCEEDED.findall(worker.log())) >= tasks_wanted,
        timeout=60,
        failure=lambda: f"{len(_SUCCEEDED.findall(worker.log()))} of {tasks_wanted} tasks",
    )
    assert len(_SUCCEEDED.findall(worker.log())) == tasks_wanted
