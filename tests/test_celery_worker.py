"""End to end with a real Celery worker process and the real Redis broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings
from django.db import connection

from documents.embeddings import FakeProvider
from documents.models import Document
from documents.services import document_create

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from celery import Celery

REDIS_URL = "redis://127.0.0.1:6379/15"
WORKER_READY_TIMEOUT = 60.0
INDEXED_TIMEOUT = 60.0


def database_url() -> str:
    """The URL of the test database (NAME is test_*), for a process outside pytest."""
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="")
    password = quote(db["PASSWORD"] or "", safe="")
    if db["HOST"].startswith("/"):  # A Unix socket directory (embedded server).
        return f"postgresql://{user}:{password}@:{db['PORT']}/{db['NAME']}?" + urlencode(
            {"host": db["HOST"]}
        )
    return f"postgresql://{user}:{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def reset_broker_pools(app: Celery) -> None:
    """Drop pooled broker connections so the next send reads ``broker_url`` again.

    Eager ``apply_async`` acquires a producer from the pool too, so earlier
    tests leave pools bound to the eager-mode (empty) broker URL.
    """
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None and amqp._producer_pool is not None:
        amqp._producer_pool.force_close_all()
        amqp._producer_pool = None


@pytest.fixture
def redis_queue() -> Iterator[str]:
    """A queue name of its own on the real Redis, removed afterwards."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} (start redis-server): {exc}")
    queue = f"test-docsearch-{uuid.uuid4().hex[:12]}"
    try:
        yield queue
    finally:
        client.delete(queue, f"_kombu.binding.{queue}")
        client.close()


@pytest.fixture
def celery_to_redis(redis_queue: str) -> Iterator[str]:
    """Send tasks through Redis to ``redis_queue`` instead of running them eagerly."""
    from config.celery import app

    names = ("task_always_eager", "broker_url", "task_default_queue")
    saved = {name: app.conf[name] for name in names}
    reset_broker_pools(app)
    app.conf.task_always_eager = False
    app.conf.broker_url = REDIS_URL
    app.conf.task_default_queue = redis_queue
    try:
        yield redis_queue
    finally:
        reset_broker_pools(app)
        for name, value in saved.items():
            app.conf[name] = value


@pytest.fixture
def worker(celery_to_redis: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A solo-pool worker consuming the test queue, against the test database."""
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "EMBEDDING_PROVIDER": "fake",
        "CELERY_BROKER_URL": REDIS_URL,
        "DATABASE_URL": database_url(),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool=solo",
        "--concurrency=1",
        "--loglevel=INFO",
        "-Q",
        celery_to_redis,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        f"--hostname={celery_to_redis}@%h",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_for(
            lambda: " ready." in log_path.read_text(errors="replace"),
            timeout=WORKER_READY_TIMEOUT,
            failure=lambda: f"worker not ready (exit code {process.poll()})",
        )
        yield process
    finally:
        stop(process)
        # Captured: pytest shows the worker's log when the test fails.
        print(log_path.read_text(errors="replace"))


def wait_for(condition: Callable[[], bool], *, timeout: float, failure: Callable[[], str]) -> None:
    """Poll ``condition`` until it holds, failing with ``failure()`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(failure())
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the worker: warm shutdown, then kill if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_indexes_a_saved_document(worker: subprocess.Popen[bytes]) -> None:
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
