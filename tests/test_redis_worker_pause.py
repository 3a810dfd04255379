"""A `ccdash worker` SIGSTOPped for longer than its heartbeat TTL but shorter than its
visibility timeout (a VM paused, a debugger): its peers take it for dead and claim
what it held, read-ahead included. SIGCONTed, it must not hand out the read-ahead it
no longer owns (its leases had not run out by its own clock): that is work a peer
does too. Only the delivery whose handler was running when it stopped is done twice
(a handler cannot be taken back; its late ack is refused)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fleet import Fleet, fleet_on, has_workers, publish
from support.polling import wait_until
from support.redis_fixtures import RedisServer

pytestmark = [pytest.mark.slow]


@pytest.fixture
def fleet(redis_server: RedisServer, tmp_path: Path) -> Iterator[Fleet]:
    yield from fleet_on(redis_server, tmp_path, "pause")


def test_a_worker_paused_past_its_ttl_drops_the_read_ahead_its_peers_took(fleet: Fleet) -> None:
    """The victim (one consumer, read-ahead of 4) is stopped while it holds a handler in
    progress and buffered entries, until its peer has claimed them; then continued.
    Every message is handled; of what the victim completes once continued, at most one
    (the handler it was in) is a message its peer completed too. (Before, it handed
    out its read-ahead as well: 2 or 3 such messages. One it completed before the stop
    but whose ack had not gone out is done twice too, and is not counted here.)"""
    for name in ("victim", "peer"):
        fleet.spawn(name, delay=0.1, ttl=0.6, vt=30.0, concurrency=1)
    wait_until(lambda: asyncio.run(has_workers(fleet.url, 2)), 20, "both workers")
    ids = asyncio.run(publish(fleet.url, 10))
    victim = fleet.procs["victim"]
    victim_out = fleet.out / f"{victim.pid}.log"
    wait_until(victim_out.exists, 10, "the victim at work")
    victim.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: "dead worker(s) victim" in fleet.log("peer"), 10, "the peer's claim")
        before = len(victim_out.read_text().splitlines())  # it cannot write while stopped
    finally:
        victim.send_signal(signal.SIGCONT)
    wait_until(lambda: fleet.done() >= ids, 20, "every message handled")
    time.sleep(0.3)  # what the victim would still hand out (0.1 s each) shows by then
    codes = fleet.stop_all()
    assert codes == {"victim": 0, "peer": 0}, (fleet.log("victim")[-2000:], codes)
    after = [line.split()[0] for line in victim_out.read_text().splitlines()[before:]]
    peer = {m for f in fleet.out.glob("*.log") if f != victim_out for m in f.read_text().split()}
    twice = [m for m in after if m in peer]
    assert len(twice) <= 1, (twice, fleet.log("victim")[-3000:])
