"""The figures the stress tests record under ``test-artifacts/``, and their table.

Each test writes its JSON file in a ``finally`` clause, so a run that fails
half-way still leaves what it measured; ``conftest.py`` prints the table
below at the end of ``make stress``, from the files the run itself wrote.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

ARTIFACTS: Final = Path(__file__).resolve().parents[2] / "test-artifacts"
LOAD: Final = "load.json"
BULK_IMPORT: Final = "bulk_import.json"
#: The file each stress test module writes.
ARTIFACT_OF_MODULE: Final = {"test_load": LOAD, "test_bulk_import": BULK_IMPORT}


def write_figures(name: str, figures: Mapping[str, Any]) -> Path:
    """Write ``figures`` to ``test-artifacts/<name>``; return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return path


def read_figures(name: str, *, since: float) -> dict[str, Any] | None:
    """The figures in ``test-artifacts/<name>`` if written at ``since`` or later."""
    path = ARTIFACTS / name
    try:
        if path.stat().st_mtime < since:
            return None  # An earlier run's figures.
        figures = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return figures if isinstance(figures, dict) else None


def percentile(samples: Sequence[float], pct: int) -> float | None:
    """The exact ``pct``-th percentile, or None with fewer than two samples."""
    if len(samples) < 2:
        return None
    return round(statistics.quantiles(samples, n=100, method="inclusive")[pct - 1], 1)


def stopped_by(exc: BaseException) -> str:
    """One line saying which exception ended a test early."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200] if lines else ''}".rstrip(": ")


def _cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[object]], *, left: int = 1) -> list[str]:
    """Text table: the first ``left`` columns left-aligned, the others right-aligned."""
    cells = [list(header), *([_cell(value) for value in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    return [line(cells[0]), line(["-" * w for w in widths]), *(line(row) for row in cells[1:])]


def load_lines(figures: Mapping[str, Any]) -> list[str]:
    """The load test's figures: locust per endpoint, then the sequential baseline."""
    lines = [
        f"load: {figures.get('users', '?')} users for {figures.get('duration_s', '?')} s, "
        f"gunicorn {figures.get('gunicorn', '?')}, {_cell(figures.get('documents'))} documents, "
        f"embedder {figures.get('embedding_provider', '?')}, "
        f"load average {_cell(figures.get('load_average_before'))} "
        f"on {figures.get('cpu_count', '?')} CPUs"
    ]
    rows: list[list[object]] = [
        [row["name"], row["mode"], row["requests"], row["rps"], row["p50_ms"], row["p95_ms"],
         row["failures"]]
        for row in figures.get("endpoints", [])
    ]  # fmt: skip
    rows += [
        [f"{row['name']} (sequential)", row["mode"], row["requests"], row["rps"], row["p50_ms"],
         row["p95_ms"], row["failures"]]
        for row in figures.get("no_load", [])
    ]  # fmt: skip
    if rows:
        header = ("endpoint", "mode", "requests", "req/s", "p50 ms", "p95 ms", "errors")
        lines += ["  " + line for line in table(header, rows, left=2)]
    else:
        lines.append("  no requests measured")
    return lines


def bulk_import_lines(figures: Mapping[str, Any]) -> list[str]:
    """The bulk import's counts and its phases' durations and rates."""
    lines = [
        f"bulk import: {_cell(figures.get('imported'))} of {_cell(figures.get('documents'))} "
        f"documents imported, {_cell(figures.get('refused'))} refused, "
        f"{_cell(figures.get('chunks'))} chunks, {_cell(figures.get('ready'))} ready, "
        f"{_cell(figures.get('tasks_succeeded'))} of {_cell(figures.get('tasks'))} tasks; "
        f"worker {figures.get('worker', '?')}, embedder {figures.get('embedding_provider', '?')}"
    ]
    rows = [
        [label, figures.get(f"{key}_s"), figures.get(f"{key}_docs_per_s")]
        for label, key in (
            ("import_documents (read, extract, save)", "import"),
            ("indexing after the import", "index"),
            ("end to end", "total"),
        )
    ]
    lines += ["  " + line for line in table(("phase", "seconds", "docs/s"), rows)]
    return lines


RENDER: Final = {LOAD: load_lines, BULK_IMPORT: bulk_import_lines}


def summary_lines(outcomes: Mapping[str, str], *, since: float) -> list[str]:
    """The table for the stress modules that ran (``outcomes``: module -> outcome)."""
    lines: list[str] = []
    for module, outcome in outcomes.items():
        name = ARTIFACT_OF_MODULE.get(module)
        if name is None:
            continue
        figures = read_figures(name, since=since)
        if lines:
            lines.append("")
        if figures is None:
            lines.append(f"{module} {outcome}: nothing measured (no test-artifacts/{name})")
            continue
        lines += RENDER[name](figures)
        if "stopped_by" in figures:
            lines.append(f"  {module} {outcome}: stopped early, figures so far only")
            lines.append(f"  ({figures['stopped_by']})")
        elif outcome != "passed":
            lines.append(f"  {module} {outcome} after measuring (see the failure above)")
    return lines
