"""Create the demo login and import the demo corpus (idempotent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from documents.models import Document

DEMO_CORPUS = Path(__file__).resolve().parents[2] / "demo_corpus"
DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password-2026"


class Command(BaseCommand):
    help = "Create the demo staff login and import the demo corpus shipped with the repo."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username=DEMO_USERNAME,
            defaults={"is_staff": True, "is_superuser": True, "email": "demo@example.com"},
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        Group.objects.get_or_create(name="HR")
        for folder in sorted(p for p in DEMO_CORPUS.iterdir() if p.is_dir()):
            call_command(
                "import_documents",
                str(folder),
                tag=["demo", folder.name],
                owner=DEMO_USERNAME,
                no_progress=options["no_progress"],
                stdout=self.stdout,
                stderr=self.stderr,
            )
        # Documents left pending or failed by an earlier, interrupted run.
        call_command("reembed", stale=True, no_progress=True, stdout=self.stdout)
        ready = Document.objects.filter(status=Document.Status.READY).count()
        total = Document.objects.count()
        self.stdout.write(
            self.style.SUCCESS(
                f"\nDemo ready: {ready}/{total} documents indexed.\n"
                f"Log in at http://127.0.0.1:8000/ as {DEMO_USERNAME} / {DEMO_PASSWORD}\n"
            )
        )
