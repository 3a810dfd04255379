"""SIGTERM and SIGINT mid-run: a `ccdash --demo` (on SQLite and on Redis) stops with
its report and the signal's exit status, a `ccdash worker` hands its work back and
exits 0; nothing is lost and nothing runs twice."""

from __future__ import annotations

import json
import signal
import time

import pytest
from support.redis_fixtures import RedisServer

from chaos.books import Books
from chaos.holdings import SqliteFile
from chaos.scenario_run import Chaos

pytestmark = pytest.mark.chaos

SIGNALS = [signal.SIGTERM, signal.SIGINT]
STOP_WITHIN = 20.0  # seconds: grace (5 s) plus the drain, with room for a loaded machine


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
@pytest.mark.parametrize("broker", ["sqlite", "redis"])
def test_demo_stops_cleanly_on_a_signal_mid_run(
    chaos: Chaos, redis_server: RedisServer, broker: str, sig: signal.Signals
) -> None:
    """A signal mid-run: the demo exits 128+signal within its deadline, with no
    traceback, its JSON report written (interrupted, 0 lost), and the broker and the
    ledger agree: every accepted message acked or still queued, none twice."""
    if broker == "sqlite":
        url = f"sqlite:///{chaos.tmp / 'q.db'}"
    else:
        q = chaos.redis_queue(redis_server)
        url = q.url(redis_server.url) + "&ttl=1"  # below the scenario's 2 s lease
    report_path = chaos.tmp / "report.json"
    demo = chaos.procs.demo("demo", url, report_path, duration=30)
    chaos.wait_progress(60)
    t_sig = time.monotonic()
    code = demo.stop(sig, STOP_WITHIN)
    took = time.monotonic() - t_sig
    if broker == "sqlite":
        f = SqliteFile(chaos.tmp / "q.db")
        books = Books.of(
            (), chaos.ledger, f.dead_by_id(), f.queued(), expected=f.counters()["published"]
        )
    else:
        books = Books.of(
            (), chaos.ledger, q.dead_by_id(), q.queued(), expected=q.counters().get("published", 0)
        )
    chaos.row.note(books, took, runs=1)
    assert code == 128 + sig, f"exit {code}\n{demo.stdout()[-2000:]}\n{demo.tail()}"
    books.check(set(), chaos.procs)
    report = json.loads(report_path.read_text())
    assert report["interrupted"] and report["stopped_by"] == sig.name
    assert report["lost"] == 0 and report["duplicates"] == 0
    assert f"INTERRUPTED by {sig.name}" in demo.stdout()


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_worker_stops_cleanly_on_a_signal_mid_run(
    chaos: Chaos, redis_server: RedisServer, sig: signal.Signals
) -> None:
    """One of two workers gets a signal mid-run: it hands back what it holds and exits 0
    within its deadline; the other finishes the run: 0 lost, nothing twice."""
    q = chaos.redis_queue(redis_server)
    fleet = chaos.redis_fleet(q, redis_server.url, ("g1", "g2"), CHAOS_DELAY="0.03")
    n = 600
    pub = chaos.procs.publisher(q.url(redis_server.url), chaos.published, n, rate=300)
    chaos.wait_progress(100)
    leaving = fleet.pop("g1")
    t_sig = time.monotonic()
    code = leaving.stop(sig, STOP_WITHIN, dump=True)
    took = time.monotonic() - t_sig
    assert code == 0, leaving.tail()
    assert not q.pending("g1"), "it handed back everything it held"
    books = chaos.finish_redis(q, pub, fleet, n)
    chaos.row.note(books, took, runs=1)
    books.check(set(), chaos.procs, acked=q.counters().get("acked", 0))
