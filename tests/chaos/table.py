"""The chaos table, gathered where it is printed: a plugin of tests/conftest.py, so the
pytest-xdist controller has it too (it loads no conftest of tests/chaos). Each
scenario's row travels with its test's teardown report (user_properties, see
chaos/conftest.py), the same with or without workers; the table is printed at the end
of the run and written as JSON to $CHAOS_TABLE_JSON."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from chaos.books import Row, dump_json, format_table

ROW_PROPERTY = "chaos_row"
_rows: list[Row] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Take a scenario's row from its teardown report."""
    if report.when != "teardown":
        return
    for name, value in report.user_properties:
        if name == ROW_PROPERTY and isinstance(value, dict):
            _rows.append(Row(**value))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The chaos table: scenario, runs, lost, duplicates, time to recover."""
    if not _rows:
        return
    terminalreporter.section("chaos table")
    terminalreporter.write_line(format_table(_rows))
    out = os.environ.get("CHAOS_TABLE_JSON")
    if out:
        dump_json(Path(out), _rows)
