"""Replace the database and the uploaded files with those of a backup archive."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from documents.backup import (
    BackupError,
    Manifest,
    backup_manifest,
    backup_restore,
    backup_summary,
)


class Command(BaseCommand):
    help = (
        "Replace the configured database and every file under MEDIA_ROOT with those of "
        "an archive written by `manage.py backup`. Stop the web processes and workers "
        "first; the archive is checked before anything is changed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="The archive to restore.")
        parser.add_argument(
            "--yes",
            action="store_true",
            help="Replace the database and MEDIA_ROOT without asking.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        try:
            manifest = backup_manifest(path=path)
        except BackupError as exc:
            raise CommandError(f"Not restored: {exc}") from exc
        summary = backup_summary(
            counts=manifest["counts"],
            media_files=manifest["media_files"],
            media_bytes=manifest["media_bytes"],
        )
        self.stdout.write(
            f"{path}: backup of database {manifest['database']} made "
            f"{manifest['created_at']} ({summary})"
        )
        if not options["yes"]:
            self._confirm()
        try:
            result = backup_restore(path=path)
        except BackupError as exc:
            raise CommandError(f"Restore failed: {exc}") from exc
        self._report(result.manifest, result.counts, result.media_files, result.seconds)
        if result.missing_roles:
            self.stdout.write(
                self.style.WARNING(
                    "Left out the grants to roles this server lacks: "
                    f"{', '.join(result.missing_roles)} (create_analyst_role re-creates them)."
                )
            )
        if result.unapplied_migrations:
            self.stdout.write(
                self.style.WARNING(
                    f"The archive predates {result.unapplied_migrations} migrations of this "
                    "code: run python manage.py migrate."
                )
            )

    def _confirm(self) -> None:
        target = (
            f"database {connection.settings_dict['NAME']} and every file under "
            f"{settings.MEDIA_ROOT}"
        )
        if not sys.stdin.isatty():
            raise CommandError(f"Not restored: restoring replaces {target}; pass --yes to confirm.")
        answer = input(f"Replace {target}? Type yes to go on: ")
        if answer.strip().lower() != "yes":
            raise CommandError("Not restored.")

    def _report(
        self, manifest: Manifest, counts: dict[str, int], files: int, seconds: float
    ) -> None:
        summary = backup_summary(
            counts=counts, media_files=files, media_bytes=manifest["media_bytes"]
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored database {connection.settings_dict['NAME']} in {seconds:.1f} s: "
                f"{summary}; the counts match the archive's manifest."
            )
        )
