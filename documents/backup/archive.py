"""The archive file: its manifest, writing it, and checking one before a restore."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Final, TypedDict, cast

if TYPE_CHECKING:
    from collections.abc import Iterator

logger = logging.getLogger(__name__)

ARCHIVE_FORMAT: Final = "docsearch-backup"
FORMAT_VERSION: Final = 1
#: Archive versions this code restores.
SUPPORTED_VERSIONS: Final = frozenset({1})
MANIFEST_NAME: Final = "manifest.json"
DUMP_NAME: Final = "database.dump"
MEDIA_PREFIX: Final = "media/"
#: Top-level folders of MEDIA_ROOT that a restore stages files in; never
#: backed up (one left behind by a crash would otherwise come back).
STAGING_PREFIX: Final = ".restore-"
COPY_BUFFER: Final = 1 << 20
_MANIFEST_MAX_BYTES: Final = 1 << 20


class BackupError(Exception):
    """A backup cannot be written, or an archive cannot be restored."""


class Manifest(TypedDict):
    format: str
    version: int
    created_at: str
    database: str
    server_version: str
    pg_dump_version: str
    #: Rows per table label (``documents``, ``chunks``, ``users``, ...).
    counts: dict[str, int]
    media_files: int
    media_bytes: int
    dump_bytes: int
    dump_sha256: str


_MANIFEST_FIELDS: Final[dict[str, type]] = {
    "created_at": str,
    "database": str,
    "server_version": str,
    "pg_dump_version": str,
    "counts": dict,
    "media_files": int,
    "media_bytes": int,
    "dump_bytes": int,
    "dump_sha256": str,
}

# --- Writing -------------------------------------------------------------------------


def file_digest(path: Path) -> tuple[int, str]:
    """The size and SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(COPY_BUFFER):
            digest.update(block)
    return path.stat().st_size, digest.hexdigest()


def media_files(root: Path, *, skip: tuple[Path, ...] = ()) -> list[tuple[Path, int]]:
    """Regular files under ``root`` with their sizes, in name order.

    Symbolic links are left out (a restore would write what they point to
    into MEDIA_ROOT), as are ``skip`` (the archive being written, when it
    is inside MEDIA_ROOT) and folders left by an interrupted restore.
    """
    files: list[tuple[Path, int]] = []
    for folder, subfolders, names in os.walk(root):
        here = Path(folder)
        subfolders[:] = sorted(
            name
            for name in subfolders
            if here / name not in skip and not (here == root and name.startswith(STAGING_PREFIX))
        )
        for name in sorted(names):
            path = here / name
            if path in skip:
                continue
            if path.is_symlink() or not path.is_file():
                logger.warning("Backup leaves out %s: not a regular file", path)
                continue
            files.append((path, path.stat().st_size))
    return files


def write_archive(
    partial: Path,
    *,
    manifest: Manifest,
    dump: Path,
    media_root: Path,
    files: list[tuple[Path, int]],
) -> None:
    """The tar file: manifest first (``tar tf`` shows it), the dump, the media."""
    data = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
    info = tarfile.TarInfo(MANIFEST_NAME)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
    try:
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(info, io.BytesIO(data))
            tar.add(dump, arcname=DUMP_NAME)
            for path, _ in files:
                arcname = MEDIA_PREFIX + path.relative_to(media_root).as_posix()
                tar.add(path, arcname=arcname, recursive=False)
    except FileNotFoundError as exc:
        raise BackupError(
            f"a media file was deleted during the backup, run it again: {exc}"
        ) from exc
    fsync(partial)


def fsync(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk before it is relied on."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# --- Reading and checking --------------------------------------------------------------


def open_archive(path: Path) -> tarfile.TarFile:
    if not path.is_file():
        raise BackupError(f"{path} does not exist or is not a file")
    try:
        # r:* also reads an archive compressed afterwards (gzip, bz2, xz).
        return tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(
            f"{path} is not a backup archive (not a readable tar file): {exc}"
        ) from exc


def _name(tar: tarfile.TarFile) -> str:
    return os.fsdecode(tar.name) if tar.name else "the archive"


def read_manifest(tar: tarfile.TarFile) -> Manifest:
    """The archive's manifest, checked: a known format and version, all fields."""
    name = _name(tar)
    try:
        member = tar.getmember(MANIFEST_NAME)
    except KeyError:
        raise BackupError(
            f"{name} has no {MANIFEST_NAME}: not an archive written by manage.py backup"
        ) from None
    except (tarfile.TarError, EOFError) as exc:
        raise BackupError(f"{name} is damaged: {exc}") from exc
    stream = tar.extractfile(member) if member.isfile() else None
    if stream is None or member.size > _MANIFEST_MAX_BYTES:
        raise BackupError(f"{MANIFEST_NAME} of {name} is not a small regular file")
    try:
        data = json.loads(stream.read())
    except (ValueError, tarfile.TarError, EOFError) as exc:
        raise BackupError(f"{MANIFEST_NAME} of {name} is not readable JSON: {exc}") from exc
    return _check_manifest(data, name=name)


def _check_manifest(data: object, *, name: str) -> Manifest:
    if not isinstance(data, dict) or data.get("format") != ARCHIVE_FORMAT:
        raise BackupError(f"{name} is not a {ARCHIVE_FORMAT} archive (see its {MANIFEST_NAME})")
    version = data.get("version")
    if version not in SUPPORTED_VERSIONS:
        known = ", ".join(str(v) for v in sorted(SUPPORTED_VERSIONS))
        raise BackupError(
            f"{name} is of archive version {version!r}; this code restores version {known} "
            "(a newer archive needs newer code)"
        )
    wrong = sorted(
        key
        for key, kind in _MANIFEST_FIELDS.items()
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool)
    )
    counts = data.get("counts")
    if isinstance(counts, dict) and not all(isinstance(v, int) for v in counts.values()):
        wrong.append("counts")
    if wrong:
        raise BackupError(f"the manifest of {name} is damaged: bad {', '.join(wrong)}")
    return cast(Manifest, data)


def check_members(
    tar: tarfile.TarFile, manifest: Manifest
) -> tuple[tarfile.TarInfo, list[tarfile.TarInfo]]:
    """The dump and the media files of the archive; refuses anything else."""
    try:
        members = tar.getmembers()
    except (tarfile.TarError, EOFError) as exc:
        raise BackupError(f"{_name(tar)} is damaged: {exc}") from exc
    dump: tarfile.TarInfo | None = None
    media: list[tarfile.TarInfo] = []
    for member in members:
        name = member.name.rstrip("/")
        if name == DUMP_NAME and member.isfile():
            dump = member
        elif name.startswith(MEDIA_PREFIX) and (member.isfile() or member.isdir()):
            media_relative(name)
            if member.isfile():
                media.append(member)
        elif not (name == MANIFEST_NAME or (name == "media" and member.isdir())):
            # Links and devices too: a restore writes regular files only.
            raise BackupError(f"{_name(tar)} holds an unexpected member {member.name!r}")
    if dump is None:
        raise BackupError(f"{_name(tar)} has no {DUMP_NAME}: not a complete backup")
    if dump.size != manifest["dump_bytes"] or len(media) != manifest["media_files"]:
        raise BackupError(f"{_name(tar)} does not hold what its manifest lists: it is damaged")
    return dump, media


def media_relative(name: str) -> PurePosixPath:
    """The path of a media member below MEDIA_ROOT; refuses one that leaves it."""
    relative = PurePosixPath(name[len(MEDIA_PREFIX) :])
    if (
        not relative.parts
        or relative.is_absolute()
        or ".." in relative.parts
        or relative.parts[0].startswith(STAGING_PREFIX)
    ):
        raise BackupError(f"refusing media member {name!r}: it leaves MEDIA_ROOT")
    return relative


# --- Extracting ------------------------------------------------------------------------


def extract_dump(
    tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, *, manifest: Manifest
) -> Path:
    """Write the dump to ``target``, checking it against the manifest's digest."""
    digest = hashlib.sha256()
    try:
        with _member(tar, member) as source, target.open("wb") as out:
            while block := source.read(COPY_BUFFER):
                digest.update(block)
                out.write(block)
    except (tarfile.TarError, EOFError) as exc:
        raise BackupError(f"{_name(tar)} is damaged: {exc}") from exc
    except OSError as exc:
        raise BackupError(
            f"cannot unpack the dump to {target.parent} (TMPDIR needs room for it): {exc}"
        ) from exc
    if digest.hexdigest() != manifest["dump_sha256"]:
        raise BackupError(f"{DUMP_NAME} of {_name(tar)} does not match its checksum: it is damaged")
    return target


def _member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    stream = tar.extractfile(member)
    if stream is None:
        raise BackupError(f"{member.name} of {_name(tar)} is not a regular file")
    return stream


@contextlib.contextmanager
def staged_media(
    tar: tarfile.TarFile, members: list[tarfile.TarInfo], *, media_root: Path
) -> Iterator[Path]:
    """The media files, extracted to a folder inside MEDIA_ROOT.

    Inside, so that they move in by renaming (one file system) also when
    MEDIA_ROOT is a mounted volume. The folder is removed on the way out.
    """
    try:
        media_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=media_root))
    except OSError as exc:
        raise BackupError(f"cannot write to MEDIA_ROOT: {exc}") from exc
    try:
        _extract_media(tar, members, staging)
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract_media(tar: tarfile.TarFile, members: list[tarfile.TarInfo], staging: Path) -> None:
    try:
        for member in members:
            target = staging.joinpath(*media_relative(member.name).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with _member(tar, member) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out, COPY_BUFFER)
            os.utime(target, (member.mtime, member.mtime))
    except (tarfile.TarError, EOFError) as exc:
        raise BackupError(f"{_name(tar)} is damaged: {exc}") from exc
    except OSError as exc:
        raise BackupError(f"cannot unpack the media files into MEDIA_ROOT: {exc}") from exc


def replace_media(media_root: Path, staging: Path) -> None:
    """Make the staged files MEDIA_ROOT's whole content."""
    for entry in media_root.iterdir():
        if entry == staging:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in staging.iterdir():
        entry.rename(media_root / entry.name)


# --- For people ------------------------------------------------------------------------


def format_size(size: int) -> str:
    """``1.4 MB``: a byte count for people."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            break
        value /= 1000
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def backup_summary(*, counts: dict[str, int], media_files: int, media_bytes: int) -> str:
    """``3 documents, 12 chunks, ...; 2 media files (1.2 MB)``."""
    rows = ", ".join(f"{count} {label.replace('_', ' ')}" for label, count in counts.items())
    return f"{rows}; {media_files} media files ({format_size(media_bytes)})"
