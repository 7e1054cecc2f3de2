"""Import files or folders of documents, skipping unchanged files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from documents.ingestion import SUPPORTED_EXTENSIONS
from documents.services import ImportOutcome, document_ingest_bytes
from documents.services.embed import deferred_indexing


class Command(BaseCommand):
    help = (
        "Import .txt, .md, .html, .pdf and .docx files (folders are walked). "
        "Unchanged files are skipped by hash; changed files update their document."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--tag", action="append", default=[], dest="tags",
                            help="Tag every imported document (repeatable).")
        parser.add_argument("--owner", help="Username that owns new documents.")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        files = self._collect(options["paths"])
        owner = None
        if options["owner"]:
            owner = get_user_model().objects.filter(username=options["owner"]).first()
            if owner is None:
                raise CommandError(f"no user named {options['owner']!r}")
        counts = {outcome: 0 for outcome in ImportOutcome}
        failures: list[tuple[Path, str]] = []
        progress = tqdm(files, unit="file", disable=options["no_progress"] or not files,
                        file=self.stderr._out)
        with deferred_indexing():
            for path in progress:
                progress.set_postfix_str(path.name[-40:], refresh=False)
                outcome, error = self._import_one(path, options["tags"], owner)
                counts[outcome] += 1
                if error:
                    failures.append((path, error))
        self._summary(counts, failures)

    def _collect(self, paths: list[Path]) -> list[Path]:
        files: list[Path] = []
        for path in paths:
            if path.is_dir():
                files.extend(
                    p for p in sorted(path.rglob("*"))
                    if p.is_file() and not p.name.startswith(".")
                )
            elif path.is_file():
                files.append(path)
            else:
                raise CommandError(f"{path}: no such file or folder")
        return files

    def _import_one(self, path: Path, tags: list[str], owner: Any) -> tuple[ImportOutcome, str]:
        if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
            return ImportOutcome.FAILED, (
                f"unsupported file type '{path.suffix or path.name}' (supported: "
                + ", ".join(sorted(SUPPORTED_EXTENSIONS)) + ")"
            )
        try:
            data = path.read_bytes()
        except OSError as exc:
            return ImportOutcome.FAILED, f"cannot read file: {exc.strerror or exc}"
        try:
            result = document_ingest_bytes(
                data=data, filename=path.name, source_path=str(path.resolve()),
                tags=tags, owner=owner,
            )
        except Exception as exc:  # The rest of the import goes on.
            return ImportOutcome.FAILED, f"{type(exc).__name__}: {exc}"
        return result.outcome, result.error

    def _summary(self, counts: dict[ImportOutcome, int],
                 failures: list[tuple[Path, str]]) -> None:
        line = ", ".join(f"{counts[o]} {o.value}" for o in ImportOutcome)
        style = self.style.ERROR if failures else self.style.SUCCESS
        self.stdout.write(style(f"Import finished: {line}."))
        for path, error in failures:
            self.stdout.write(f"  failed: {path}: {error}")
