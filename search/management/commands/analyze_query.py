"""Print a query's analysed terms as a SQL array, for the analytics SQL functions."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from search.analytics import terms_array_literal
from search.ranking.backends.hybrid import semantic_weight_for
from search.ranking.query import parse_query


class Command(BaseCommand):
    help = (
        "Analyse a query exactly as the app does (Korean morphemes, English stems) and print "
        "its terms as ARRAY['..']::text[]: psql: \\set terms `python manage.py analyze_query "
        "'text'` then SELECT * FROM analytics.keyword_search(:terms, 10);"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("text", help="The query, as typed in the search box.")
        parser.add_argument(
            "--semantic-weight",
            action="store_true",
            help="Print instead the weight the app gives the semantic leg of hybrid search.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        parsed = parse_query(options["text"])
        if options["semantic_weight"]:
            self.stdout.write(repr(semantic_weight_for(parsed.semantic_text)))
            return
        if parsed.is_empty:
            raise CommandError("the query has no searchable terms")
        if parsed.phrases or parsed.excluded or parsed.excluded_phrases:
            self.stderr.write(
                "note: the SQL functions rank by terms only; quoted phrases and "
                "-exclusions are not applied"
            )
        self.stdout.write(terms_array_literal(parsed.terms))
