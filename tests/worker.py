"""Real Celery workers for tests: separate processes, the real Redis, the test database.

Tests that use these helpers must be ``django_db(transaction=True)``: a worker
is another process and only sees committed rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings
from django.db import connection

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import redis
    from celery import Celery

REDIS_URL = "redis://127.0.0.1:6379/15"
WORKER_READY_TIMEOUT = 60.0


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


def subprocess_env(**overrides: str) -> dict[str, str]:
    """Environment for a project process (worker, management command) on the test database.

    Production settings (``config.settings``) read from the environment, with
    the test database, the fake embedder without a companion model and no
    broker unless ``overrides`` names one.
    """
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "EMBEDDING_PROVIDER": "fake",
        "EMBEDDING_COMPANION": "",
        "DATABASE_URL": database_url(),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    env.pop("CELERY_BROKER_URL", None)
    env.update(overrides)
    return env


def run_command(
    *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``manage.py *args`` in a process of its own, on the test database
    (``env``: overrides of :func:`subprocess_env`)."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=subprocess_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def reset_broker_pools(app: Celery) -> None:
    """Drop pooled broker connections so the next send reads ``broker_url`` again.

    Eager ``apply_async`` acquires a producer from the pool too, so earlier
    tests leave pools bound to the eager-mode (empty) broker URL. The pools
    live in kombu's process-wide registry, keyed by connection: closing them
    without removing them from it would hand the next test a closed pool.
    """
    from kombu import pools

    pools.reset()  # Closes every pool and empties the registry.
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


def redis_client() -> redis.Redis:
    """A client of the test Redis database; fails the test when Redis is down."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} (start redis-server): {exc}")
    return client


@contextmanager
def redis_queue() -> Iterator[str]:
    """A queue name of its own on the real Redis, removed afterwards.

    Its binding tables and any message still unacknowledged (a killed worker's)
    go too, so that no later worker restores a message into a dead queue.
    """
    client = redis_client()
    queue = f"test-docsearch-{uuid.uuid4().hex[:12]}"
    try:
        yield queue
    finally:
        for tag, payload in client.hgetall("unacked").items():
            if json.loads(payload)[2] == queue:  # [message, exchange, routing key]
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        client.close()


@contextmanager
def tasks_sent_to(queue: str) -> Iterator[str]:
    """Send tasks through Redis to ``queue`` instead of running them eagerly."""
    from config.celery import app

    names = ("task_always_eager", "broker_url", "task_default_queue")
    saved = {name: app.conf[name] for name in names}
    reset_broker_pools(app)
    app.conf.task_always_eager = False
    app.conf.broker_url = REDIS_URL
    app.conf.task_default_queue = queue
    try:
        yield queue
    finally:
        reset_broker_pools(app)
        for name, value in saved.items():
            app.conf[name] = value


class Worker:
    """One ``celery worker`` process consuming ``queue``, logging to ``log_path``."""

    def __init__(
        self,
        queue: str,
        log_path: Path,
        *,
        name: str = "worker",
        pool: str = "solo",
        concurrency: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        self.queue = queue
        self.log_path = log_path
        self.command = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            f"--pool={pool}", f"--concurrency={concurrency}", "--loglevel=INFO",
            "-Q", queue, "--without-gossip", "--without-mingle", "--without-heartbeat",
            f"--hostname={name}-{queue}@%h",
        ]  # fmt: skip
        self.env = subprocess_env(CELERY_BROKER_URL=REDIS_URL, **(env or {}))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        """Start the process and wait until it consumes."""
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=settings.BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(
            lambda: " ready." in self.log(),
            timeout=WORKER_READY_TIMEOUT,
            failure=lambda: f"worker not ready (exit code {self.poll()}):\n{self.log()}",
        )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def poll(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def count(self, text: str) -> int:
        """How often ``text`` occurs in the worker's log."""
        return self.log().count(text)

    def kill(self) -> None:
        """SIGKILL (``kill -9``), as the OOM killer or a lost machine would: no cleanup.

        With the solo pool the task runs in this very process, so the task dies
        unacknowledged and Redis redelivers it after the visibility timeout.
        """
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """Warm shutdown, then kill if it hangs."""
        if self.process is not None:
            stop(self.process)


@contextmanager
def running_worker(queue: str, log_path: Path, **options: object) -> Iterator[Worker]:
    """A started worker (see ``Worker``), stopped afterwards; its log is printed.

    pytest shows the captured log when the test fails.
    """
    worker = Worker(queue, log_path, **options)  # type: ignore[arg-type]
    try:
        yield worker.start()
    finally:
        worker.stop()
        print(f"--- {log_path.name} ---\n{worker.log()}")


def wait_for(
    condition: Callable[[], bool],
    *,
    timeout: float,
    failure: Callable[[], str],
    interval: float = 0.2,
) -> None:
    """Poll ``condition`` until it holds, failing with ``failure()`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(failure())
        time.sleep(interval)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process: SIGTERM (a worker's warm shutdown), then kill if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
