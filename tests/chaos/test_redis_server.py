"""Chaos on the redis-server under a fleet of real `ccdash worker` processes: a
crash and restart (append-only, fsync always) mid-run, and a stall (SIGSTOP)
longer than the heartbeat TTL."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from support.redis_fixtures import RedisServer

from chaos.scenario_run import Chaos

pytestmark = pytest.mark.chaos

TTL = 1.5
N = 1200


def test_redis_server_restart_with_append_only_persistence_mid_run(
    chaos: Chaos, redis_server_factory: Callable[[], RedisServer]
) -> None:
    """redis-server is SIGKILLed mid-run and started again on its append-only file: the
    workers and the publisher reconnect, 0 lost, only what was in flight runs twice."""
    server = redis_server_factory()
    q = chaos.redis_queue(server)
    fleet = chaos.redis_fleet(q, server.url, ("r1", "r2", "r3"), ttl=TTL)
    pub = chaos.procs.publisher(q.url(server.url), chaos.published, N, rate=250)
    chaos.wait_progress(300)
    before = q.pending()
    server.stop(kill=True)
    time.sleep(1.0)  # the outage
    server.start()
    t_back = time.monotonic()
    in_flight = before | q.pending()
    recover = chaos.recovered(t_back, in_flight, q.dead_by_id, N)
    books = chaos.finish_redis(q, pub, fleet, N)
    chaos.row.note(books, recover, runs=1)
    books.check(in_flight, chaos.procs, acked=q.counters().get("acked", 0))


def test_redis_server_stalled_longer_than_the_heartbeat_ttl(
    chaos: Chaos, redis_server_factory: Callable[[], RedisServer]
) -> None:
    """redis-server is SIGSTOPped for 2.5 heartbeat TTLs, then SIGCONTed: no worker died,
    so none may take over another's work (no false failover: nothing runs twice), and
    the run completes with 0 lost."""
    server = redis_server_factory()
    q = chaos.redis_queue(server)
    # Slow enough handlers that every worker holds leases when Redis stops.
    fleet = chaos.redis_fleet(q, server.url, ("s1", "s2", "s3"), ttl=TTL, CHAOS_DELAY="0.05")
    pub = chaos.procs.publisher(q.url(server.url), chaos.published, N, rate=250)
    chaos.wait_progress(300)
    held = q.pending()
    server.freeze()
    time.sleep(2.5 * TTL)  # the stall: longer than the TTL, shorter than the socket timeout
    server.thaw()
    recover = chaos.recovered(time.monotonic(), held, q.dead_by_id, N)
    books = chaos.finish_redis(q, pub, fleet, N)
    chaos.row.note(books, recover, runs=1)
    counters = q.counters()
    books.check(set(), chaos.procs, acked=counters.get("acked", 0))
    assert counters.get("redelivered", 0) == 0, "a live worker's messages were taken over"
