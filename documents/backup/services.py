"""Back up to an archive, read its manifest, restore from it."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from documents.backup.archive import (
    ARCHIVE_FORMAT,
    DUMP_NAME,
    FORMAT_VERSION,
    BackupError,
    Manifest,
    check_members,
    extract_dump,
    file_digest,
    fsync,
    media_files,
    open_archive,
    read_manifest,
    replace_media,
    staged_media,
    write_archive,
)
from documents.backup.postgres import (
    check_dump,
    connect,
    count_rows,
    dump_database,
    restore_database,
    unapplied_migrations,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    size: int
    seconds: float
    manifest: Manifest


@dataclass(frozen=True, slots=True)
class RestoreResult:
    manifest: Manifest
    #: Rows per table label in the restored database (equal to the manifest's).
    counts: dict[str, int]
    media_files: int
    seconds: float
    #: Roles the archive grants privileges to that this server lacks; their
    #: grants were left out (create_analyst_role re-creates them).
    missing_roles: tuple[str, ...]
    #: Migrations of this code not applied to the restored database.
    unapplied_migrations: int


def backup_create(*, path: Path | str, force: bool = False) -> BackupResult:
    """Write an archive of the database and of MEDIA_ROOT to ``path``.

    The archive is written next to ``path`` under a temporary name and
    renamed at the end, so a failed backup leaves no partial archive. An
    existing ``path`` is replaced only with ``force``.
    """
    started = time.monotonic()
    target = Path(path).absolute()
    _check_target(target, force=force)
    try:
        work = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        )
        try:
            manifest = _write_backup(target, work=work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    except OSError as exc:
        raise BackupError(f"cannot write {target}: {exc}") from exc
    size = target.stat().st_size
    logger.info("Wrote backup %s (%d bytes)", target, size)
    return BackupResult(
        path=target, size=size, seconds=time.monotonic() - started, manifest=manifest
    )


def _write_backup(target: Path, *, work: Path) -> Manifest:
    """Dump, archive and rename into place; ``work`` is a folder beside ``target``."""
    media_root = Path(settings.MEDIA_ROOT)
    dump = work / DUMP_NAME
    database = dump_database(dump)
    dump_bytes, dump_sha256 = file_digest(dump)
    files = media_files(media_root, skip=(target, work))
    manifest = Manifest(
        format=ARCHIVE_FORMAT,
        version=FORMAT_VERSION,
        created_at=timezone.now().isoformat(),
        database=database.database,
        server_version=database.server_version,
        pg_dump_version=database.pg_dump_version,
        counts=database.counts,
        media_files=len(files),
        media_bytes=sum(size for _, size in files),
        dump_bytes=dump_bytes,
        dump_sha256=dump_sha256,
    )
    partial = work / "archive.tar"
    write_archive(partial, manifest=manifest, dump=dump, media_root=media_root, files=files)
    partial.chmod(0o600)  # Password hashes and every document are inside.
    partial.replace(target)
    fsync(target.parent)
    return manifest


def _check_target(target: Path, *, force: bool) -> None:
    if target.is_dir():
        raise BackupError(f"{target} is a directory: name the archive file to write")
    if target.exists() and not force:
        raise BackupError(f"{target} exists: pass --force to replace it")
    if not target.parent.is_dir():
        raise BackupError(f"directory {target.parent} does not exist")


def backup_manifest(*, path: Path | str) -> Manifest:
    """The manifest of the archive at ``path``, after the checks that read no data.

    Checks that the file is a tar archive with a manifest of a known version,
    a dump, and media files only under ``media/``. :func:`backup_restore`
    checks the rest (the dump's checksum and format) before it changes
    anything.
    """
    with open_archive(Path(path)) as tar:
        manifest = read_manifest(tar)
        check_members(tar, manifest)
    return manifest


def backup_restore(*, path: Path | str) -> RestoreResult:
    """Replace the database and the files under MEDIA_ROOT with an archive's.

    Everything that can be checked is checked before the database is
    touched: the manifest, the dump's checksum and format, the media files
    (extracted inside MEDIA_ROOT first). The database is then restored in
    one transaction, so a failure leaves it as it was, and the restored row
    counts are compared with the manifest. Web processes and workers should
    be stopped: the restore waits at most a minute for their locks.
    """
    started = time.monotonic()
    media_root = Path(settings.MEDIA_ROOT)
    with open_archive(Path(path)) as tar, tempfile.TemporaryDirectory() as scratch:
        manifest = read_manifest(tar)
        dump_member, media_members = check_members(tar, manifest)
        work = Path(scratch)
        dump = extract_dump(tar, dump_member, work / DUMP_NAME, manifest=manifest)
        toc = check_dump(dump)
        with staged_media(tar, media_members, media_root=media_root) as staging:
            missing_roles = restore_database(dump, toc=toc, work=work)
            try:
                replace_media(media_root, staging)
            except OSError as exc:
                raise BackupError(
                    f"the database was restored, but the files under {media_root} could "
                    f"not be replaced (restore again once that is fixed): {exc}"
                ) from exc
    with connect(autocommit=True) as conn:
        counts = count_rows(conn)
    restored_files = len(media_files(media_root))
    _check_restored(manifest, counts=counts, restored_files=restored_files)
    logger.info("Restored backup %s of %s", path, manifest["created_at"])
    return RestoreResult(
        manifest=manifest,
        counts=counts,
        media_files=restored_files,
        seconds=time.monotonic() - started,
        missing_roles=missing_roles,
        unapplied_migrations=unapplied_migrations(),
    )


def _check_restored(manifest: Manifest, *, counts: dict[str, int], restored_files: int) -> None:
    """Fail loudly when the restored data differs from what the manifest lists."""
    expected = {**manifest["counts"], "media files": manifest["media_files"]}
    actual: dict[str, int] = {**counts, "media files": restored_files}
    differences = [
        f"{label} {actual.get(label)} (archive {count})"
        for label, count in expected.items()
        if actual.get(label) != count
    ]
    if differences:
        raise BackupError(
            "the restored data does not match the archive's manifest: " + ", ".join(differences)
        )
