"""The chaos suite's fixtures: a scenario's processes, ledger and table row (the
table itself: chaos/table.py)."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos.books import Row
from chaos.procs import Procs
from chaos.scenario_run import Chaos
from chaos.table import ROW_PROPERTY

ROW = pytest.StashKey[Row]()


@pytest.fixture
def chaos(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chaos]:
    """The scenario's processes and measurements; leftover processes are killed."""
    row = Row(request.node.name.removeprefix("test_"))
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
    """Note each scenario's outcome in its row; the row goes with the teardown report
    (the fixture has timed the scenario by then) to the table."""
    rep = yield
    row = item.stash.get(ROW, None)
    if row is not None and (rep.when == "call" or rep.failed):
        row.outcome = "pass" if rep.passed else rep.outcome
    if row is not None and rep.when == "teardown":
        rep.user_properties.append((ROW_PROPERTY, dict(row.__dict__)))
    return rep
