"""Create a bearer token for the JSON API and print its key (once)."""

from __future__ import annotations

import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from search.services import api_token_create


class Command(BaseCommand):
    help = (
        "Create an API token acting as USERNAME (it sees what that user may see) and "
        "print its key. Only a digest is stored: the key cannot be shown again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="What the token is for.")
        parser.add_argument(
            "--expires-in-days", type=int, default=None, help="Default: never expires."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no user named {options['username']!r}")
        if not user.is_active:
            raise CommandError(f"user {user.username!r} is inactive")
        days = options["expires_in_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-in-days must be at least 1")
        expires = timezone.now() + datetime.timedelta(days=days) if days else None
        token, key = api_token_create(user=user, name=options["name"][:100], expires_at=expires)
        self.stderr.write(
            f"Token {token.prefix}… for {user.username}"
            + (f", expires {expires:%Y-%m-%d %H:%M %Z}" if expires else ", no expiry")
            + ". Send it as 'Authorization: Bearer <key>'; it is shown only now:"
        )
        self.stdout.write(key)
