"""Workers against the real broker: one killed mid-task, edits racing the embedding.

2. A worker killed (SIGKILL) in the middle of a task: the unacknowledged task
   is delivered again to another worker, and the document ends ready with one
   set of chunks.
3. A document edited twice quickly, or while its embedding runs: the final
   chunks are those of the final text, never a mix.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import pytest

from documents.models import Chunk, Document
from documents.services import document_create, document_update
from tests.faults.helpers import (
    TASK_TIMEOUT,
    assert_one_complete_chunk_set,
    handbook_text,
    policy_text,
    status_of,
)
from tests.worker import Worker, redis_client, redis_queue, running_worker, tasks_sent_to, wait_for

if TYPE_CHECKING:
    from pathlib import Path

_SUCCEEDED = re.compile(r"documents\.tasks\.documents_embed\[[0-9a-f-]+\] succeeded in")


def succeeded(worker: Worker) -> int:
    """How many indexing tasks ``worker`` finished."""
    return len(_SUCCEEDED.findall(worker.log()))


# ---------------------------------------------------------------------------
# 2. A worker killed in the middle of a task
# ---------------------------------------------------------------------------

VISIBILITY_TIMEOUT = 2  # Seconds before Redis hands an unacknowledged task to another worker.


def unacked_messages_for(queue: str) -> int:
    """How many messages delivered from ``queue`` wait unacknowledged in Redis."""
    import json

    client = redis_client()
    try:
        return sum(1 for payload in client.hvals("unacked") if json.loads(payload)[2] == queue)
    finally:
        client.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_task_of_a_killed_worker_runs_again_on_another_worker(tmp_path: Path) -> None:
    """Late acknowledgement: a worker SIGKILLed mid-task leaves its task unacknowledged in
    Redis, which delivers it again after the visibility timeout; the next worker indexes
    the document, leaving one set of chunks."""
    env = {"CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)}
    with redis_queue() as queue, tasks_sent_to(queue):
        first = Worker(queue, tmp_path / "worker-1.log", name="first", env=env)
        try:
            first.start()
            document = document_create(title="Staff handbook", text=handbook_text("clause"))
            wait_for(
                lambda: status_of(document.pk) == Document.Status.PROCESSING,
                timeout=TASK_TIMEOUT,
                interval=0.05,
                failure=lambda: f"never processing: {status_of(document.pk)}\n{first.log()}",
            )
            first.kill()
            killed_at = time.monotonic()
        finally:
            first.stop()
            print(f"--- worker-1.log ---\n{first.log()}")
        # It died mid-task: no vector stored (the chunks are the keyword index the
        # save wrote), and the task waits unacknowledged.
        task_ids = re.findall(r"documents_embed\[([0-9a-f-]+)\] received", first.log())
        assert len(task_ids) == 1
        assert succeeded(first) == 0
        assert status_of(document.pk) == Document.Status.PROCESSING
        assert Chunk.objects.filter(document_id=document.pk).exists()
        assert not Chunk.objects.filter(document_id=document.pk, embedding__isnull=False).exists()
        assert unacked_messages_for(queue) == 1
        # Redis restores it once it is older than the visibility timeout; the next
        # worker does so when it starts (and periodically).
        time.sleep(max(0.0, VISIBILITY_TIMEOUT + 0.5 - (time.monotonic() - killed_at)))
        with running_worker(queue, tmp_path / "worker-2.log", name="second", env=env) as second:
            wait_for(
                lambda: succeeded(second) >= 1,
                timeout=TASK_TIMEOUT,
                failure=lambda: f"not run again: {status_of(document.pk)}\n{second.log()}",
            )
            assert second.poll() is None
        # The same task, delivered again (at least once: a task running longer than
        # the visibility timeout may be delivered once more; it is idempotent).
        assert f"documents_embed[{task_ids[0]}] succeeded" in second.log()
        assert unacked_messages_for(queue) == 0
    assert_one_complete_chunk_set(document.pk)
    assert Chunk.objects.filter(document_id=document.pk).count() > 500


# ---------------------------------------------------------------------------
# 3. Edits racing the embedding
# ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_racing_edits_leave_the_chunks_of_the_final_text(tmp_path: Path) -> None:
    """With two worker processes: a document saved three times in a row, and a long one
    edited while its embedding runs, both end indexed from their final text only."""
    with (
        redis_queue() as queue,
        tasks_sent_to(queue),
        running_worker(queue, tmp_path / "worker.log", pool="prefork", concurrency=2) as worker,
    ):
        quick = document_create(title="Travel policy", text=policy_text("first draft"))
        document_update(document=quick, text=policy_text("second draft"))
        document_update(document=quick, text=policy_text("final travel"))

        slow = document_create(title="Staff handbook", text=handbook_text("outdated"))
        wait_for(
            lambda: status_of(slow.pk) == Document.Status.PROCESSING,
            timeout=TASK_TIMEOUT,
            interval=0.05,
            failure=lambda: f"never processing: {status_of(slow.pk)}\n{worker.log()}",
        )
        editor_copy = Document.objects.get(pk=slow.pk)  # An editor opens it meanwhile.
        document_update(document=editor_copy, text=policy_text("final handbook"))
        # Five tasks: three for the quick edits, two for the handbook.
        wait_for(
            lambda: succeeded(worker) >= 5,
            timeout=TASK_TIMEOUT,
            failure=lambda: f"{succeeded(worker)} of 5 tasks done\n{worker.log()}",
        )
        assert succeeded(worker) == 5
        # The handbook's first run finished after the edit: its chunks were discarded.
        assert "changed during embedding; skipped" in worker.log()

    for document, final in ((quick, "final travel"), (slow, "final handbook")):
        assert_one_complete_chunk_set(document.pk)
        document.refresh_from_db()
        assert document.text == policy_text(final)
        texts = Chunk.objects.filter(document_id=document.pk).values_list("text", flat=True)
        assert all(final in text for text in texts if "Section" in text)
        assert not any(old in text for text in texts for old in ("draft", "outdated"))
