"""Chaos on a fleet of real `ccdash worker` processes: SIGKILL one of three,
again and again, while a publisher process keeps publishing."""

from __future__ import annotations

import signal
import time
from functools import partial

import pytest
from support.redis_fixtures import RedisServer

from chaos.scenario_run import OPEN_ENDED, Chaos

pytestmark = pytest.mark.chaos

KILLS = 4


def test_kill9_one_of_three_redis_workers_repeatedly(
    chaos: Chaos, redis_server: RedisServer
) -> None:
    """Three workers; one after another is SIGKILLed mid-run and started again, in turn
    under its old name (as a service manager does: it takes over at once) and under a
    new one (the others claim its messages after its heartbeat TTL): 0 lost, only what
    a victim held runs twice."""
    q = chaos.redis_queue(redis_server)
    url = q.url(redis_server.url)
    # Handlers slow enough that the fleet is busy: a victim dies holding work.
    fleet = chaos.redis_fleet(q, redis_server.url, ("a-0", "b-0", "c-0"), CHAOS_DELAY="0.04")
    pub = chaos.procs.publisher(url, chaos.published, OPEN_ENDED, rate=250)
    in_flight: set[str] = set()
    recover: list[float] = []
    for k in range(KILLS):
        chaos.wait_progress(150)
        victim = fleet.pop(sorted(fleet)[k % 3])
        held = chaos.freeze_holding(victim, partial(q.pending, victim.name))
        victim.kill9()
        t_kill = time.monotonic()
        in_flight |= held
        same_name = k % 2 == 0
        name = victim.name if same_name else f"{victim.name[0]}-{k + 1}"
        fleet[name] = chaos.procs.worker(url, name, CHAOS_DELAY="0.04")
        if not same_name:
            chaos.wait(
                partial(q.holds_nothing, victim.name),
                30,
                f"the entries {victim.name} held to be claimed",
            )
        recover.append(chaos.recovered(t_kill, held, q.dead_by_id, OPEN_ENDED))
    assert pub.stop(signal.SIGTERM, 30) == 0, pub.tail()  # published through every kill
    books = chaos.finish_redis(q, pub, fleet, None)
    chaos.row.note(books, max(recover), runs=KILLS)
    books.check(in_flight, chaos.procs, acked=q.counters().get("acked", 0))
