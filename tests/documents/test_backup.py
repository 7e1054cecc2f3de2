"""manage.py backup and restore: a real round trip, and the archives a restore refuses.

Restores replace a whole database, so every test that may restore runs in a
scratch copy of the test database (``scratch_database``), never in the one
the other tests share.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from io import StringIO
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.db import connection, connections

from documents.backup import FORMAT_VERSION, backup_create
from documents.backup.postgres import _filter_grants, connect
from documents.models import Chunk, Document, DocumentTerm
from search.models import SearchQueryLog
from search.ranking.selectors import search_hits
from search.services import search_log_create
from tests.factories import make_document

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

    from pytest_django.fixtures import Settings as SettingsWrapper

MEDIA_FILE = "documents/2026/12/휴가 규정.txt"
MEDIA_BYTES = "연차 휴가는 매년 15일입니다.\n".encode()


@pytest.fixture
def scratch_database(transactional_db: None, created_databases: list[str]) -> Iterator[str]:
    """Point Django at a copy of the test database for one test; dropped afterwards."""
    import psycopg
    from psycopg import sql

    original = connection.settings_dict["NAME"]
    scratch = f"{original}_backup"
    created_databases.append(scratch)
    connections.close_all()  # A template database must have no sessions.
    params = connection.get_connection_params()
    for key in ("dbname", "cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch))
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(scratch), sql.Identifier(original)
            )
        )
    connection.settings_dict["NAME"] = scratch
    yield scratch
    connections.close_all()
    connection.settings_dict["NAME"] = original


@pytest.fixture
def media_root(settings: SettingsWrapper, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def corpus(scratch_database: str, media_root: Path) -> User:
    """Committed documents (indexed), a user in a group, a search log and a media file."""
    alice = User.objects.create_user("alice", password="pw-alice-123")
    hr = Group.objects.create(name="HR")
    alice.groups.add(hr)
    make_document("Vacation policy", "Staff get fifteen vacation days a year. " * 20, owner=alice)
    make_document("Security handbook", "Rotate passwords and report phishing. " * 20, groups=[hr])
    make_document("휴가 규정", "연차 휴가는 매년 15일이며 vacation 신청은 포털에서 합니다.")
    search_log_create(
        user=alice,
        query="vacation",
        mode="hybrid",
        filters={"tag": ["hr"]},
        result_count=1,
        latency_ms=2.5,
        source="web",
    )
    (media_root / MEDIA_FILE).parent.mkdir(parents=True)
    (media_root / MEDIA_FILE).write_bytes(MEDIA_BYTES)
    return alice


def floats(vector: Iterable[float] | None) -> list[float] | None:
    return None if vector is None else [float(value) for value in vector]


def database_state() -> dict[str, list[Any]]:
    """What a restore must bring back, as ordered lists of values."""
    vectors = [
        floats(vector)
        for vector in Document.objects.order_by("pk").values_list("embedding", flat=True)
    ]
    return {
        "documents": list(
            Document.objects.order_by("pk").values_list(
                "pk", "title", "text", "content_hash", "status", "tags", "owner_id"
            )
        ),
        "document_vectors": vectors,
        "document_groups": list(
            Document.groups.through.objects.order_by("pk").values_list("document_id", "group_id")
        ),
        "chunks": list(
            Chunk.objects.order_by("pk").values_list("pk", "document_id", "position", "text")
        ),
        "chunk_vectors": [
            floats(vector)
            for vector in Chunk.objects.order_by("pk").values_list("embedding", flat=True)
        ],
        "terms": list(DocumentTerm.objects.order_by("pk").values_list("document_id", "term", "tf")),
        "users": list(User.objects.order_by("pk").values_list("pk", "username", "password")),
        "groups": list(Group.objects.order_by("pk").values_list("pk", "name")),
        "memberships": list(
            User.groups.through.objects.order_by("pk").values_list("user_id", "group_id")
        ),
        "logs": list(
            SearchQueryLog.objects.order_by("pk").values_list(
                "pk", "user_id", "query", "mode", "filters", "created_at"
            )
        ),
    }


def search_ids(user: User) -> dict[str, list[int]]:
    return {
        mode: [hit.document_id for hit in search_hits(query="vacation days", mode=mode, user=user)]
        for mode in ("keyword", "semantic")
    }


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


class TestRoundTrip:
    def test_restore_brings_back_the_database_and_the_media_files(
        self, corpus: User, media_root: Path, tmp_path: Path
    ) -> None:
        """After changes, a restore returns rows, vectors, files and search results as backed up."""
        before, ids_before = database_state(), search_ids(corpus)
        assert ids_before["keyword"] and ids_before["semantic"]
        archive = tmp_path / "backup.tar"

        report = run("backup", str(archive))
        assert "3 documents" in report
        assert "1 query logs; 1 media files" in report
        with tarfile.open(archive) as tar:
            assert tar.getnames()[:2] == ["manifest.json", "database.dump"]
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert manifest["version"] == FORMAT_VERSION
        assert manifest["counts"] == {
            "documents": 3,
            "chunks": len(before["chunks"]),
            "users": 1,
            "groups": 1,
            "query_logs": 1,
        }
        assert manifest["media_files"] == 1

        Document.objects.get(title="Vacation policy").delete()
        make_document("Travel expenses", "Book trains two weeks ahead.")
        User.objects.create_user("mallory")
        SearchQueryLog.objects.all().delete()
        (media_root / MEDIA_FILE).unlink()
        (media_root / "stray.txt").write_text("added after the backup")
        assert database_state() != before

        report = run("restore", str(archive), "--yes")
        assert "the counts match the archive's manifest" in report
        assert database_state() == before
        assert search_ids(corpus) == ids_before
        assert (media_root / MEDIA_FILE).read_bytes() == MEDIA_BYTES
        assert sorted(p.name for p in media_root.iterdir()) == ["documents"]
        # The sequences came back too: new rows do not collide with restored ones.
        assert make_document("After the restore", "Fresh text.").pk > before["documents"][-1][0]
        assert "Wrote" in run("backup", str(archive), "--force")

    def test_a_failed_backup_leaves_no_file(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db: None
    ) -> None:
        """pg_dump failing leaves neither the archive nor its temporary folder."""
        monkeypatch.setattr("documents.backup.postgres.client_program", lambda name: "false")
        with pytest.raises(CommandError, match="No backup written: pg_dump --version failed"):
            run("backup", str(tmp_path / "backup.tar"))
        assert list(tmp_path.iterdir()) == []


class TestBackupRefuses:
    def test_an_existing_path_without_force(self, tmp_path: Path, db: None) -> None:
        """An existing file is kept as it was unless --force."""
        archive = tmp_path / "backup.tar"
        archive.write_bytes(b"yesterday")
        with pytest.raises(CommandError, match=r"backup.tar exists: pass --force"):
            run("backup", str(archive))
        assert archive.read_bytes() == b"yesterday"

    def test_a_missing_folder(self, tmp_path: Path, db: None) -> None:
        with pytest.raises(CommandError, match=r"directory .*missing does not exist"):
            run("backup", str(tmp_path / "missing" / "backup.tar"))


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def members_of(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def rewritten(archive: Path, target: Path, *, dump: bytes | None = None, **fields: Any) -> Path:
    """A copy of ``archive`` with another dump and manifest fields (checksum kept right)."""
    members = members_of(archive)
    manifest = json.loads(members["manifest.json"])
    if dump is not None:
        members["database.dump"] = dump
        manifest.update(dump_bytes=len(dump), dump_sha256=hashlib.sha256(dump).hexdigest())
    manifest.update(fields)
    members["manifest.json"] = json.dumps(manifest).encode()
    return write_tar(target, members)


def damaged(kind: str, archive: Path, target: Path) -> Path:
    """An archive ``restore`` must refuse, made from a good one."""
    match kind:
        case "garbage":
            target.write_bytes(b"\x00garbage" * 512)
        case "truncated":
            target.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
        case "without manifest":
            write_tar(target, {"database.dump": b"not used"})
        case "foreign manifest":
            write_tar(target, {"manifest.json": b'{"format": "other"}', "database.dump": b""})
        case "newer version":
            rewritten(archive, target, version=FORMAT_VERSION + 1)
        case "bad checksum":
            rewritten(archive, target, dump_sha256="0" * 64)
        case "not a dump":
            rewritten(archive, target, dump=b"PGDMP but not really" * 100)
        case "dump cut short":
            # pg_restore reads the table of contents, then breaks off in the data.
            data = members_of(archive)["database.dump"]
            rewritten(archive, target, dump=data[: len(data) * 99 // 100])
        case "media leaving MEDIA_ROOT":
            write_tar(target, {**members_of(archive), "media/../../escaped.txt": b"x"})
        case _:
            raise AssertionError(kind)
    return target


REFUSALS = {
    "garbage": "not a backup archive",
    "truncated": "bad.tar is damaged",
    "without manifest": "has no manifest.json",
    "foreign manifest": "is not a docsearch-backup archive",
    "newer version": "a newer archive needs newer code",
    "bad checksum": "does not match its checksum",
    "not a dump": "reading the dump failed",
    "dump cut short": "pg_restore failed, the database is unchanged",
    "media leaving MEDIA_ROOT": "refusing media member .*: it leaves MEDIA_ROOT",
}


class Terminal(io.StringIO):
    """Standard input that says it is a terminal, with the answers typed in."""

    def isatty(self) -> bool:
        return True


class TestRestoreRefuses:
    @pytest.fixture
    def archive(self, corpus: User, tmp_path: Path) -> Path:
        backup = backup_create(path=tmp_path / "good.tar")
        return backup.path

    @pytest.mark.parametrize("kind", list(REFUSALS))
    def test_a_bad_archive_changes_nothing(
        self, kind: str, archive: Path, media_root: Path, tmp_path: Path
    ) -> None:
        """The database and MEDIA_ROOT are untouched when the archive is refused."""
        bad = damaged(kind, archive, tmp_path / "bad.tar")
        Document.objects.get(title="Vacation policy").delete()  # Differs from the archive.
        before = database_state()
        with pytest.raises(CommandError, match=REFUSALS[kind]):
            run("restore", str(bad), "--yes")
        assert database_state() == before
        assert sorted(p.relative_to(media_root).as_posix() for p in media_root.rglob("*.txt")) == [
            MEDIA_FILE
        ]

    def test_a_session_holding_a_lock_makes_it_roll_back(
        self, archive: Path, media_root: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A restore that cannot take its locks (the web still running) changes nothing."""
        monkeypatch.setattr("documents.backup.postgres.LOCK_TIMEOUT", "200ms")
        Document.objects.get(title="Vacation policy").delete()
        (media_root / "after.txt").write_text("written after the backup")
        before = database_state()
        with connect(autocommit=False) as web:  # A request inside a transaction.
            web.execute("SELECT count(*) FROM documents_document")
            with pytest.raises(CommandError, match="rolled back, the database is unchanged"):
                run("restore", str(archive), "--yes")
        assert database_state() == before
        assert (media_root / "after.txt").exists()
        assert (media_root / MEDIA_FILE).exists()

    def test_without_yes_and_without_a_terminal(self, archive: Path) -> None:
        """Without --yes and with no terminal to ask on, restore changes nothing."""
        Document.objects.get(title="Vacation policy").delete()
        before = database_state()
        with pytest.raises(CommandError, match="pass --yes to confirm"):
            run("restore", str(archive))
        assert database_state() == before

    def test_an_answer_other_than_yes(self, archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """At a terminal, only "yes" goes on."""
        monkeypatch.setattr("sys.stdin", Terminal("no\n"))
        Document.objects.get(title="Vacation policy").delete()
        before = database_state()
        with pytest.raises(CommandError, match="Not restored"):
            run("restore", str(archive))
        assert database_state() == before


class TestGrantFilter:
    def test_grants_to_missing_roles_are_left_out(self) -> None:
        """Grants to roles the server lacks go; PUBLIC and existing roles stay."""
        script = (
            "REVOKE ALL ON FUNCTION analytics.f(query text) FROM PUBLIC;\n"
            "GRANT ALL ON FUNCTION analytics.f(query text) TO alice;\n"
            'GRANT SELECT ON TABLE analytics.documents TO "Bob ""B""";\n'
            "GRANT USAGE ON SCHEMA analytics TO carol WITH GRANT OPTION;\n"
        )
        kept, missing = _filter_grants(script, roles={"alice"})
        assert kept == (
            "REVOKE ALL ON FUNCTION analytics.f(query text) FROM PUBLIC;\n"
            "GRANT ALL ON FUNCTION analytics.f(query text) TO alice;\n"
        )
        assert missing == ('Bob "B"', "carol")
