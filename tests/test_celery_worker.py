"""End to end with a real Celery worker process and the real Redis broker."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from documents.embeddings import FakeProvider
from documents.models import Document
from documents.services import document_create
from tests.worker import Worker, redis_queue, running_worker, tasks_sent_to, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

INDEXED_TIMEOUT = 60.0


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    """A solo-pool worker consuming a queue of its own, against the test database."""
    with (
        redis_queue() as queue,
        tasks_sent_to(queue),
        running_worker(queue, tmp_path / "worker.log") as worker,
    ):
        yield worker


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_indexes_a_saved_document(worker: Worker) -> None:
    """A saved document is indexed by a separate worker process via Redis."""
    document = document_create(
        title="Leave policy",
        text="Annual leave requests go through the HR portal.\n\n"
        "Managers approve them within three working days.",
    )

    def indexed() -> bool:
        document.refresh_from_db()
        return document.status == Document.Status.READY and document.chunks.exists()

    wait_for(
        indexed,
        timeout=INDEXED_TIMEOUT,
        failure=lambda: (
            f"not indexed in time: status={document.status} "
            f"last_error={document.last_error!r} worker exit={worker.poll()}"
        ),
    )
    assert worker.poll() is None
    assert document.chunks.count() > 0
    assert set(document.chunks.values_list("embedding_model", flat=True)) == {FakeProvider.name}
    assert document.embedded_hash == document.content_hash
    assert document.embedding_model == FakeProvider.name
