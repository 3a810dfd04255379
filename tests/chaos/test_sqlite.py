"""Chaos on one SQLite file: consumer processes sharing it SIGKILLed and replaced
while a producer process publishes, and one engine process (publishing and
consuming) crashed and restarted many times."""

from __future__ import annotations

import random
import signal
import time
from functools import partial

import pytest

from chaos.books import Books, read_ids
from chaos.holdings import SqliteFile
from chaos.scenario_run import OPEN_ENDED, Chaos

pytestmark = pytest.mark.chaos


def test_kill9_consumer_processes_sharing_one_sqlite_file(chaos: Chaos) -> None:
    """Three consumer processes on one file; one after another is SIGKILLed mid-run and
    replaced: its leases come back at once, 0 lost, only what it held runs twice."""
    db = chaos.tmp / "q.db"
    f = SqliteFile(db)
    procs = chaos.procs
    pub = procs.sqlite_engine(
        "producer", db, chaos.published, publish=OPEN_ENDED, rate=250, consumers=0, drain=True
    )
    chaos.wait(db.exists, 20, "the file")
    # Handlers slow enough that every consumer process is busy: a victim holds work.
    consumers = {
        f"c{i}-0": procs.sqlite_engine(f"c{i}-0", db, chaos.published, CHAOS_DELAY="0.04")
        for i in range(3)
    }
    in_flight: set[str] = set()
    recover: list[float] = []
    for k in range(3):
        chaos.wait_progress(150)
        victim = consumers.pop(sorted(consumers)[k % 3])
        held = chaos.freeze_holding(victim, partial(f.leased_by, victim.pid))
        victim.kill9()
        t_kill = time.monotonic()
        in_flight |= held
        name = f"{victim.name[:2]}-{k + 1}"
        consumers[name] = procs.sqlite_engine(name, db, chaos.published, CHAOS_DELAY="0.04")
        recover.append(chaos.recovered(t_kill, held, f.dead_by_id, OPEN_ENDED))
    pub.send(signal.SIGUSR1)  # publish no more: it exits once the file is drained
    assert pub.wait_exit(60) == 0, pub.tail()
    published = set(read_ids(chaos.published))
    for proc in consumers.values():
        assert proc.stop(signal.SIGTERM, 15) == 0, f"{proc.name}: {proc.tail()}"
    books = Books.of(published, chaos.ledger, f.dead_by_id(), f.queued())
    chaos.row.note(books, max(recover), runs=3)
    books.check(in_flight, procs, acked=f.counters()["acked"])


CRASHES = 8


def test_crash_restart_a_sqlite_engine_many_times(chaos: Chaos) -> None:
    """An engine process publishing and consuming is SIGKILLed at a random point and
    restarted, again and again; a last run drains the file: 0 lost, only what was
    leased at a crash ran twice. Each run publishes until it is killed: with a fixed
    total, the random points (plus what a loaded machine completes before the test
    sees it) could use the total up before the last kill, which then waited for
    completions that could never come."""
    db = chaos.tmp / "q.db"
    f = SqliteFile(db)
    rng = random.Random(3)
    in_flight: set[str] = set()
    recover: list[float] = []
    t_kill: float | None = None
    for k in range(CRASHES):
        start = len(read_ids(chaos.published))
        engine = chaos.procs.sqlite_engine(
            f"run{k}", db, chaos.published, publish=OPEN_ENDED, rate=400, start=start
        )
        if t_kill is not None:
            recover.append(chaos.recovered(t_kill, in_flight, f.dead_by_id, OPEN_ENDED))
        else:
            chaos.wait_progress(50)
        chaos.wait_progress(rng.randint(20, 120))
        engine.freeze()
        in_flight |= f.leased_by(engine.pid)
        engine.kill9()
        t_kill = time.monotonic()
    total = len(read_ids(chaos.published))  # the last run publishes nothing more
    last = chaos.procs.sqlite_engine("last", db, chaos.published, drain=True)
    assert t_kill is not None
    recover.append(chaos.recovered(t_kill, in_flight, f.dead_by_id, total))
    assert last.wait_exit(60) == 0, last.tail()
    published = set(read_ids(chaos.published))
    books = Books.of(published, chaos.ledger, f.dead_by_id(), f.queued())
    chaos.row.note(books, max(recover), runs=CRASHES)
    books.check(in_flight, chaos.procs)
    assert not f.queued(), "the last run drained the file"
