"""Chaos on the disk under a SQLite broker: the file cannot grow any more mid-run (a
full disk, as RLIMIT_FSIZE makes it for one process)."""

from __future__ import annotations

import sys
import time

import pytest

from chaos.books import Books, read_ledger
from chaos.holdings import SqliteFile
from chaos.procs import SCENARIO
from chaos.scenario_run import Chaos

pytestmark = pytest.mark.chaos

CAP = 1_200_000  # bytes a file may grow to: the WAL reaches it a few seconds in


def test_demo_on_a_sqlite_file_whose_disk_fills_mid_run(chaos: Chaos) -> None:
    """`ccdash --demo` on a SQLite file whose disk fills a few seconds in: it stops
    within its bound with exit 1 and one `ccdash: error:` line saying the write
    failed, no traceback; every message the file accepted is acked or still in it."""
    db = chaos.tmp / "q.db"
    demo = chaos.procs.start(
        "demo",
        [
            *(sys.executable, "-m", "chaos.limited", str(CAP)),
            *("-m", "ccdash", "--demo", "--scenario", str(SCENARIO), "--seed", "11"),
            *("--handler", "chaos.handlers:record", "--broker", f"sqlite:///{db}"),
            *("--duration", "60"),
        ],
    )
    chaos.wait(lambda: len(read_ledger(chaos.ledger)) >= 50, 20, "the run under way")
    t0 = time.monotonic()
    code = demo.wait_exit(45)
    took = time.monotonic() - t0
    f = SqliteFile(db)
    books = Books.of(
        (), chaos.ledger, f.dead_by_id(), f.queued(), expected=f.counters()["published"]
    )
    chaos.row.note(books, took, runs=1)
    err = demo.stderr()
    assert code == 1, f"exit {code}\n{demo.stdout()[-1500:]}\n{err[-3000:]}"
    errors = [ln for ln in err.splitlines() if ln.startswith("ccdash: error: ")]
    assert len(errors) == 1 and "write failed" in errors[0], err[-3000:]
    books.check(set(), chaos.procs)
