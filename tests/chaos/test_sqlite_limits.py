"""Chaos on the limits of a SQLite broker file: it cannot grow any more mid-run (a
full disk, as RLIMIT_FSIZE makes it for one process), and another process holds
its write lock for seconds mid-run."""

from __future__ import annotations

import sqlite3
import sys
import time

import pytest
from support.polling import wait_until

from ccdash.brokers.sqlite.schema import BUSY_TIMEOUT_MS
from chaos.books import Books, read_ids, read_ledger
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
    # Under way (or already stopped by the full disk: no guard against its exit here).
    wait_until(
        lambda: len(read_ledger(chaos.ledger)) >= 50 or not demo.alive(), 20, "the run under way"
    )
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
    assert len(read_ledger(chaos.ledger)) >= 20, "it failed mid-run, not at the start"
    books.check(set(), chaos.procs)


# Each longer than the engine's heartbeat timeout (2 s) and shorter than its lease (30 s);
# the second is past the busy timeout (10 s) too: the writer retries behind a warning.
LOCKS_S = (4.0, 12.0)


@pytest.mark.parametrize("lock_s", LOCKS_S)
def test_foreign_process_holds_the_sqlite_write_lock_mid_run(chaos: Chaos, lock_s: float) -> None:
    """Another process takes the file's write lock (BEGIN IMMEDIATE) mid-run and holds
    it past the engine's heartbeat timeout (and past the busy timeout): the engine waits
    it out (no consumer judged hung, nothing handed back and run again), then the run
    completes: 0 lost, nothing twice, no redelivery."""
    db = chaos.tmp / "q.db"
    f = SqliteFile(db)
    engine = chaos.procs.sqlite_engine(
        "engine", db, chaos.published, publish=600, rate=250, drain=True, CHAOS_DELAY="0.02"
    )
    chaos.wait_progress(150)
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        t_lock = time.monotonic()
        held = f.leased()  # a read: WAL readers are not blocked by the writer's lock
        time.sleep(lock_s)  # the fault's length
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    recover = chaos.recovered(time.monotonic(), held, f.dead_by_id, 600)
    assert engine.wait_exit(60) == 0, engine.tail()
    published = set(read_ids(chaos.published))
    books = Books.of(published, chaos.ledger, f.dead_by_id(), f.queued())
    chaos.row.note(books, max(recover, time.monotonic() - t_lock - lock_s), runs=1)
    counters = f.counters()
    books.check(set(), chaos.procs, acked=counters["acked"])
    assert counters["redelivered"] == 0, f"{counters['redelivered']} redelivered after the lock"
    waited = "write waits: database is locked" in engine.stderr()
    assert waited == (lock_s > BUSY_TIMEOUT_MS / 1000), engine.stderr()[-2000:]
