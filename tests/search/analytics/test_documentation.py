"""docs/analysts.md: every view, function and example as the database has it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from documents.models import Document
from search import analytics
from search.clustering.models import Cluster
from search.models import SearchQueryLog
from search.ranking.query import parse_query
from tests.search.analytics.helpers import as_role, rows, vector

pytestmark = pytest.mark.django_db

DOCS: Path = Path(settings.BASE_DIR) / "docs" / "analysts.md"


# --- The documentation --------------------------------------------------------

_VIEW_HEADING = re.compile(r"^### analytics\.(\w+)$", re.MULTILINE)
_ROW = re.compile(r"^\| (\w+) \| ([^|]+?) \| .+\|$", re.MULTILINE)
_SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```", re.MULTILINE | re.DOTALL)
_VARIABLE = re.compile(r"(?<![:\w]):(?:'(\w+)'|(\w+))")


def documented_views() -> dict[str, list[tuple[str, str]]]:
    text = DOCS.read_text(encoding="utf-8")
    sections = _VIEW_HEADING.split(text)[1:]
    return {
        name: [(m.group(1), m.group(2)) for m in _ROW.finditer(body) if m.group(1) != "column"]
        for name, body in zip(sections[::2], sections[1::2], strict=True)
    }


def examples(variables: dict[str, str]) -> list[str]:
    """Every ```sql block of the documentation, psql variables filled in."""

    def fill(match: re.Match[str]) -> str:
        quoted, plain = match.group(1), match.group(2)
        value = variables[quoted or plain]
        return "'" + value.replace("'", "''") + "'" if quoted else value

    return [
        _VARIABLE.sub(fill, block) for block in _SQL_BLOCK.findall(DOCS.read_text(encoding="utf-8"))
    ]


class TestDocumentation:
    def test_every_view_is_documented_as_it_is(self) -> None:
        """docs/analysts.md lists each view's columns with their types, in order."""
        with connection.cursor() as cursor:
            actual: dict[str, list[tuple[str, str]]] = {}
            for view, column, type_ in rows(
                cursor,
                "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)"
                " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
                " WHERE c.relnamespace = 'analytics'::regnamespace AND c.relkind = 'v'"
                " AND a.attnum > 0 ORDER BY c.relname, a.attnum",
            ):
                actual.setdefault(view, []).append((column, type_))
        assert documented_views() == actual

    def test_every_function_is_documented(self) -> None:
        text = DOCS.read_text(encoding="utf-8")
        for function in analytics.analytics_functions():
            assert f"`{function.name}(" in text, function.name

    def test_examples_run_as_an_analyst(
        self,
        corpus: dict[str, Document],
        search_logs: list[SearchQueryLog],
        clustering: list[Cluster],
        analyst: str,
    ) -> None:
        """Each example query of the documentation runs, as an analyst, on real data."""
        terms = analytics.terms_array_literal(parse_query("vector search").terms)
        blocks = examples(
            {"q": vector("vector search"), "terms": terms, "doc_id": str(corpus["vectors"].pk)}
        )
        assert len(blocks) >= 10
        nonempty = 0
        with as_role(analyst) as cursor:
            for block in blocks:
                try:
                    with transaction.atomic():
                        cursor.execute(block)
                except DatabaseError as exc:
                    pytest.fail(f"docs/analysts.md example failed: {exc}\n{block}")
                nonempty += bool(cursor.fetchall())
        assert nonempty >= len(blocks) - 3
