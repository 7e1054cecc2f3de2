"""Backups that restore: the database and the uploaded files in one archive.

An archive is a tar file of three kinds of members:

- ``manifest.json``: the format version, when and from which database and
  server it was made, row counts of the main tables and the media file count
  (:class:`Manifest`);
- ``database.dump``: ``pg_dump -Fc`` of the whole application database;
- ``media/...``: every file under ``MEDIA_ROOT``.

``archive`` reads and writes the tar file, ``postgres`` runs the PostgreSQL
client programs, ``services`` puts them together for the ``backup`` and
``restore`` commands.
"""

from __future__ import annotations

from documents.backup.archive import (
    FORMAT_VERSION,
    BackupError,
    Manifest,
    backup_summary,
    format_size,
)
from documents.backup.services import (
    BackupResult,
    RestoreResult,
    backup_create,
    backup_manifest,
    backup_restore,
)

__all__ = [
    "FORMAT_VERSION",
    "BackupError",
    "BackupResult",
    "Manifest",
    "RestoreResult",
    "backup_create",
    "backup_manifest",
    "backup_restore",
    "backup_summary",
    "format_size",
]
