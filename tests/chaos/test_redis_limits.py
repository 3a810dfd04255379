"""Chaos on the redis-server's limits under a fleet of real `ccdash worker`s and a
publisher process: every client connection killed again and again (`CLIENT KILL
TYPE normal`: a proxy or a failover dropping them), and memory running out
(`maxmemory` with `noeviction`) mid-run."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest
from support.redis_fixtures import RedisServer

from chaos.scenario_run import OPEN_ENDED, Chaos

pytestmark = pytest.mark.chaos

TTL = 1.5
N = 1000
STORMS = 6


def test_redis_client_connections_killed_repeatedly_mid_run(
    chaos: Chaos, redis_server_factory: Callable[[], RedisServer]
) -> None:
    """Every client connection is killed, again and again while work flows: the
    workers and the publisher reconnect each time, 0 lost, nothing wedges, and only
    what was leased at a kill may run twice."""
    server = redis_server_factory()
    q = chaos.redis_queue(server)
    fleet = chaos.redis_fleet(q, server.url, ("k1", "k2", "k3"), ttl=TTL, CHAOS_DELAY="0.03")
    pub = chaos.procs.publisher(q.url(server.url), chaos.published, OPEN_ENDED, rate=300)
    chaos.wait_progress(150)
    in_flight: set[str] = set()
    recover: list[float] = []
    for _ in range(STORMS):
        before = q.pending()
        assert b":" in server.command("CLIENT", "KILL", "TYPE", "normal")  # :<killed>
        t_kill = time.monotonic()
        in_flight |= before | q.pending()
        chaos.wait_progress(40, within=20)  # work flows again before the next one
        recover.append(time.monotonic() - t_kill)
    assert pub.stop(signal.SIGTERM, 30) == 0, pub.tail()  # published through every storm
    books = chaos.finish_redis(q, pub, fleet, None)
    chaos.row.note(books, max(recover), runs=STORMS)
    books.check(in_flight, chaos.procs, acked=q.counters().get("acked", 0))


def test_redis_out_of_memory_mid_run(
    chaos: Chaos, redis_server_factory: Callable[[], RedisServer]
) -> None:
    """Redis runs out of memory (noeviction) while a backlog waits: the publisher is
    told its publishes fail (an error, not a silent wait), the workers go on
    consuming the backlog, and once memory is raised the run completes: 0 lost,
    nothing run twice (no worker was judged dead)."""
    server = redis_server_factory()
    q = chaos.redis_queue(server)
    # Slow handlers (2 x 4 at 50 ms: ~160/s) under a faster publisher: a backlog.
    fleet = chaos.redis_fleet(q, server.url, ("o1", "o2"), ttl=TTL, CHAOS_DELAY="0.05")
    pub = chaos.procs.publisher(q.url(server.url), chaos.published, N, rate=400)
    chaos.wait(lambda: q.entries() >= 200, 20, "a backlog of 200")
    server.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    assert server.command("CONFIG", "SET", "maxmemory", "1").startswith(b"+OK")
    t_oom = time.monotonic()
    chaos.wait(lambda: "publish failed" in pub.stderr(), 10, "the publisher told of the failure")
    told = time.monotonic() - t_oom
    chaos.wait_progress(150, within=15)  # the backlog is consumed meanwhile
    # Out of memory for longer than the heartbeat TTL (the fault's length).
    time.sleep(max(0.0, t_oom + 2 * TTL - time.monotonic()))
    assert server.command("CONFIG", "SET", "maxmemory", "0").startswith(b"+OK")
    recover = chaos.recovered(time.monotonic(), set(), q.dead_by_id, N)
    books = chaos.finish_redis(q, pub, fleet, N)
    chaos.row.note(books, max(told, recover), runs=1)
    counters = q.counters()
    books.check(set(), chaos.procs, acked=counters.get("acked", 0))
    assert counters.get("redelivered", 0) == 0, "a live worker's messages were taken over"
    for proc in fleet.values():  # each said why its presence ran out meanwhile
        assert "heartbeat refused by Redis" in proc.stderr(), proc.tail()
