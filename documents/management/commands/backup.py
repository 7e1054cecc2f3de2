"""Write the database and the uploaded files to one archive file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from documents.backup import BackupError, backup_create, backup_summary, format_size


class Command(BaseCommand):
    help = (
        "Write the whole database (pg_dump -Fc) and every file under MEDIA_ROOT to one "
        "archive file (tar) at PATH; `manage.py restore PATH` brings both back."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path", type=Path, help="The archive to write, e.g. backups/2026-12-01.tar"
        )
        parser.add_argument("--force", action="store_true", help="Replace PATH if it exists.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = backup_create(path=options["path"], force=options["force"])
        except BackupError as exc:
            raise CommandError(f"No backup written: {exc}") from exc
        manifest = result.manifest
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {result.path} ({format_size(result.size)}) in {result.seconds:.1f} s"
            )
        )
        summary = backup_summary(
            counts=manifest["counts"],
            media_files=manifest["media_files"],
            media_bytes=manifest["media_bytes"],
        )
        self.stdout.write(
            f"Database {manifest['database']} (PostgreSQL {manifest['server_version']}, "
            f"dump {format_size(manifest['dump_bytes'])}): {summary}"
        )
