"""The code stays linted, formatted and typed: ruff and mypy run as part of the suite.

So `make test` (and CI) fail on a type error or a lint finding, not only
`make lint`. Configuration lives in pyproject.toml.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.conf import settings


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_tool_passes(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
