"""Create or update a read-only PostgreSQL role for analysts (docs/analysts.md)."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from search.analytics import (
    AnalystRoleError,
    analyst_dsn,
    analyst_role_create,
    analyst_role_drop,
    sync_search_settings,
)


class Command(BaseCommand):
    help = (
        "Create (idempotently) a LOGIN role that may read the analytics schema and nothing "
        "else, or update or drop one; options left out keep their value. Also records the "
        "search settings the analytics SQL functions use (--sync-settings alone does only "
        "that)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="Role name (lowercase, digits, _).")
        password = parser.add_mutually_exclusive_group()
        password.add_argument(
            "--password", help="Visible in shell history: prefer --password-from-env."
        )
        password.add_argument(
            "--password-from-env",
            metavar="VAR",
            help="Read the password from environment variable VAR.",
        )
        parser.add_argument(
            "--statement-timeout",
            help="Default statement_timeout of the role (new roles: 30s).",
        )
        parser.add_argument(
            "--connection-limit",
            type=int,
            help="Concurrent connections allowed (new roles: 10).",
        )
        parser.add_argument(
            "--grant-group",
            action="append",
            default=[],
            metavar="GROUP",
            help="Let the role see documents restricted to GROUP (repeatable).",
        )
        parser.add_argument(
            "--revoke-group",
            action="append",
            default=[],
            metavar="GROUP",
            help="Take back a --grant-group (repeatable).",
        )
        parser.add_argument(
            "--print-dsn",
            action="store_true",
            help="Print only a psql connection URI for the role on stdout.",
        )
        parser.add_argument("--drop", action="store_true", help="Drop the role instead.")
        parser.add_argument(
            "--sync-settings",
            action="store_true",
            help="Record the search settings (model, weights, fusion).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name: str | None = options["name"]
        if name is None:
            if not options["sync_settings"]:
                raise CommandError("give a role NAME, or --sync-settings alone")
            recorded = sync_search_settings()
            self.stdout.write(f"Recorded the search settings: {recorded}")
            return
        try:
            if options["drop"]:
                analyst_role_drop(name=name)
                self.stdout.write(f"Dropped analyst role {name}.")
                return
            created = analyst_role_create(
                name=name,
                password=self._password(options),
                statement_timeout=options["statement_timeout"],
                connection_limit=options["connection_limit"],
                grant_groups=options["grant_group"],
                revoke_groups=options["revoke_group"],
            )
        except AnalystRoleError as exc:
            raise CommandError(str(exc)) from exc
        except DatabaseError as exc:
            raise CommandError(f"PostgreSQL refused: {exc}".strip()) from exc
        message = f"{'Created' if created else 'Updated'} analyst role {name}."
        if options["print_dsn"]:
            self.stderr.write(message)
            self.stdout.write(analyst_dsn(name))
        else:
            self.stdout.write(self.style.SUCCESS(message))

    def _password(self, options: dict[str, Any]) -> str | None:
        if (variable := options["password_from_env"]) is None:
            return options["password"]
        if not (value := os.environ.get(variable)):
            raise CommandError(f"environment variable {variable} is unset or empty")
        return value
