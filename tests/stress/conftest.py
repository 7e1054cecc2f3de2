"""Print the stress tests' figures at the end of the run (``make stress``).

The tests write them under ``test-artifacts/`` (see ``artifacts.py``); only
files written by this run are shown, also when a test failed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

from tests.stress.artifacts import ARTIFACT_OF_MODULE, summary_lines

if TYPE_CHECKING:
    import pytest
    from _pytest.terminal import TerminalReporter

#: This conftest is imported while the run collects, before any test runs.
_RUN_STARTED: Final = time.time()
#: Outcome per stress test module that ran, the worst of its tests' phases.
_outcomes: dict[str, str] = {}
_RANK: Final = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Note how each stress module's tests went (a setup or teardown failure: error)."""
    outcome: str = report.outcome
    if report.when != "call" and outcome == "failed":
        outcome = "error"
    module = Path(report.nodeid.split("::", 1)[0]).stem
    if _RANK[outcome] >= _RANK.get(_outcomes.get(module, "passed"), 0):
        _outcomes[module] = outcome


def pytest_terminal_summary(
    terminalreporter: TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """The figures of the stress tests that ran, after pytest's own sections."""
    ran = {module: outcome for module, outcome in _outcomes.items() if module in ARTIFACT_OF_MODULE}
    if not ran:
        return  # No stress test ran (``make test`` deselects them).
    terminalreporter.write_sep("=", "stress figures")
    for line in summary_lines(ran, since=_RUN_STARTED):
        terminalreporter.write_line(line)
