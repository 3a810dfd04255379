"""Chaos on one `ccdash worker` of a fleet: it is SIGSTOPped while it holds leases,
for longer than its heartbeat TTL and its visibility timeout (a VM paused, a
process stopped by a debugger), and SIGCONTed once its peers took its work over."""

from __future__ import annotations

import signal
import time
from functools import partial

import pytest
from support.redis_fixtures import RedisServer

from chaos.books import read_ledger
from chaos.scenario_run import OPEN_ENDED, Chaos

pytestmark = pytest.mark.chaos

TTL = 1.5
VT = 3.0


def test_worker_stopped_longer_than_its_leases_rejoins(
    chaos: Chaos, redis_server: RedisServer
) -> None:
    """One of three workers is SIGSTOPped holding leases until its peers have claimed
    and finished every one of them, then SIGCONTed: its late completions are the only
    duplicates, and the worker's late acks are refused (and said so), not counted; it
    beats and handles new work again; 0 lost, every worker exits 0 on SIGTERM."""
    q = chaos.redis_queue(redis_server)
    options = {"ttl": TTL, "vt": VT, "CHAOS_DELAY": "0.04"}
    fleet = chaos.redis_fleet(q, redis_server.url, ("p1", "p2", "p3"), **options)
    pub = chaos.procs.publisher(q.url(redis_server.url), chaos.published, OPEN_ENDED, rate=250)
    chaos.wait_progress(150)
    victim = fleet["p1"]
    held = chaos.freeze_holding(victim, partial(q.pending, victim.name))
    t_stop = time.monotonic()
    # Its peers take over what it held (dead by its heartbeat, or expired leases).
    chaos.wait(partial(q.holds_nothing, victim.name), 20, "the stopped worker's leases claimed")
    chaos.wait_settled(held, q.dead_by_id, 30, "what it held finished by its peers")
    # The stop outlasts its leases too (the fault's length, not an assertion).
    time.sleep(max(0.0, t_stop + VT + 0.5 - time.monotonic()))
    victim.send(signal.SIGCONT)
    t_cont = time.monotonic()
    # It rejoins: beats again and completes new messages.
    chaos.wait(partial(q.worker_alive, victim.name), 10, "the resumed worker beating again")
    start = len(read_ledger(chaos.ledger))

    def victim_works() -> bool:
        return any(c.pid == victim.pid for c in read_ledger(chaos.ledger)[start:])

    chaos.wait(victim_works, 20, "the resumed worker handling new messages")
    recover = time.monotonic() - t_cont
    assert pub.stop(signal.SIGTERM, 30) == 0, pub.tail()
    books = chaos.finish_redis(q, pub, fleet, None)
    chaos.row.note(books, recover, runs=1)
    books.check(held, chaos.procs, acked=q.counters().get("acked", 0))
    late = {c.mid for c in read_ledger(chaos.ledger) if c.pid == victim.pid} & held
    if books.duplicated & late:
        assert "refused" in victim.stderr(), victim.tail()
