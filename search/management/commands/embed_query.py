"""Print a query's embedding as a pgvector literal, for the analytics SQL functions."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from search.analytics import recorded_search_settings
from search.ranking.backends.semantic import embed_query
from search.ranking.query import parse_query


class Command(BaseCommand):
    help = (
        "Embed a search query with the configured provider, as the app does, and print it as "
        "a pgvector literal: psql: \\set q `python manage.py embed_query 'text'` then "
        "SELECT * FROM analytics.semantic_search(:'q'::vector, 10);"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("text", help="The query, as typed in the search box.")

    def handle(self, *args: Any, **options: Any) -> None:
        text = parse_query(options["text"]).semantic_text
        if not text:
            raise CommandError("the query has no words to embed")
        vector, _ = embed_query(text)
        self.stdout.write(vector.vector.to_text())
        try:
            recorded = recorded_search_settings()
        except DatabaseError:
            return  # No database (or no analytics schema): nothing to compare.
        if recorded is None or recorded.embedding_model != vector.model:
            self.stderr.write(
                f"warning: the analytics functions search chunks of model "
                f"{recorded and recorded.embedding_model!r}, this vector is from "
                f"{vector.model!r}: run python manage.py create_analyst_role --sync-settings"
            )
