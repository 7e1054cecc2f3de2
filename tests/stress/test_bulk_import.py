"""Bulk import: 10,000 small documents through ``import_documents`` and a real worker.

Runs under ``make stress`` only. The import runs in this process and queues
one task per ``EMBEDDING_TASK_BATCH`` documents on the real Redis; a worker
with two processes (prefork, ``--concurrency=2``, the fake embedder) indexes
them in the test database. Afterwards the counts are exact: every document
is there once, ready, with the one chunk its short text makes.
"""

from __future__ import annotations

import io
import math
import re
import time
from typing import TYPE_CHECKING

import pytest
from django.conf import settings
from django.core.management import call_command

from documents.embeddings import FakeProvider
from documents.ingestion import chunk_text, extract_text
from documents.models import Chunk, Document, DocumentTerm
from documents.services.indexing import title_prefix
from tests.worker import redis_queue, running_worker, tasks_sent_to, wait_for

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


def test_bulk_import_of_10000_documents_through_the_worker(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    for n in range(DOCUMENTS):
        folder = corpus / f"batch-{n // FILES_PER_FOLDER:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"memo-{n:05d}.txt").write_text(memo(n), encoding="utf-8")
    chunks_wanted = expected_chunks(corpus)
    tasks_wanted = math.ceil(DOCUMENTS / settings.EMBEDDING_TASK_BATCH)

    def ready() -> int:
        return Document.objects.filter(status=Document.Status.READY).count()

    with (
        redis_queue() as queue,
        tasks_sent_to(queue),
        running_worker(queue, tmp_path / "worker.log", pool="prefork", concurrency=2) as worker,
    ):
        output = io.StringIO()
        started = time.perf_counter()
        call_command("import_documents", str(corpus), "--no-progress", stdout=output)
        imported_at = time.perf_counter()
        print(output.getvalue().strip())
        assert f"Import finished: {DOCUMENTS} imported, 0 updated, 0 unchanged, 0 failed." in (
            output.getvalue()
        )
        wait_for(
            lambda: (
                ready() == DOCUMENTS
                or Document.objects.filter(status=Document.Status.FAILED).exists()
            ),
            timeout=INDEXED_TIMEOUT,
            interval=1.0,
            failure=lambda: f"{ready()} of {DOCUMENTS} ready after {INDEXED_TIMEOUT:.0f} s",
        )
        indexed_at = time.perf_counter()
        # Let the last task's acknowledgement land before the worker stops.
        wait_for(
            lambda: len(_SUCCEEDED.findall(worker.log())) >= tasks_wanted,
            timeout=60,
            failure=lambda: f"{len(_SUCCEEDED.findall(worker.log()))} of {tasks_wanted} tasks",
        )
        assert len(_SUCCEEDED.findall(worker.log())) == tasks_wanted

    import_s = imported_at - started
    index_s = indexed_at - imported_at
    total_s = indexed_at - started
    print(
        f"\nbulk import of {DOCUMENTS} documents, worker --concurrency=2, fake embedder, "
        f"{tasks_wanted} tasks of {settings.EMBEDDING_TASK_BATCH}:\n"
        f"  import_documents (read, extract, save): {import_s:7.1f} s "
        f"{DOCUMENTS / import_s:7.1f} docs/s\n"
        f"  indexing after the import:              {index_s:7.1f} s "
        f"{DOCUMENTS / index_s:7.1f} docs/s\n"
        f"  end to end:                             {total_s:7.1f} s "
        f"{DOCUMENTS / total_s:7.1f} docs/s"
    )

    assert Document.objects.count() == DOCUMENTS
    assert Document.objects.values("source_path").distinct().count() == DOCUMENTS
    assert not Document.objects.exclude(status=Document.Status.READY).exists()
    assert ready() == DOCUMENTS
    assert Chunk.objects.count() == chunks_wanted == DOCUMENTS
    assert Chunk.objects.values("document").distinct().count() == DOCUMENTS
    assert not Chunk.objects.exclude(position=0).exists()
    assert not Chunk.objects.exclude(embedding_model=FakeProvider.name).exists()
    assert DocumentTerm.objects.values("document").distinct().count() == DOCUMENTS
