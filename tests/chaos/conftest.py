"""The chaos suite's fixtures (a scenario's processes, ledger and table row) and the
table printed at the end of the run (also written as JSON to $CHAOS_TABLE_JSON)."""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos.books import Row, dump_json, format_table
from chaos.procs import Procs
from chaos.scenario_run import Chaos

ROWS = pytest.StashKey[list[Row]]()
ROW = pytest.StashKey[Row]()


@pytest.fixture
def chaos(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chaos]:
    """The scenario's processes and measurements; leftover processes are killed."""
    row = Row(request.node.name.removeprefix("test_"))
    request.config.stash.setdefault(ROWS, []).append(row)
    request.node.stash[ROW] = row
    procs = Procs(tmp_path, tmp_path / "ledger")
    t0 = time.monotonic()
    try:
        yield Chaos(tmp_path, tmp_path / "ledger", tmp_path / "published", procs, row)
    finally:
        procs.cleanup()
        row.seconds = time.monotonic() - t0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    """Note each scenario's outcome in its row."""
    rep = yield
    row = item.stash.get(ROW, None)
    if row is not None and (rep.when == "call" or rep.failed):
        row.outcome = "pass" if rep.passed else rep.outcome
    return rep


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The chaos table: scenario, runs, lost, duplicates, time to recover."""
    rows = config.stash.get(ROWS, [])
    if not rows:
        return
    terminalreporter.section("chaos table")
    terminalreporter.write_line(format_table(rows))
    out = os.environ.get("CHAOS_TABLE_JSON")
    if out:
        dump_json(Path(out), rows)
