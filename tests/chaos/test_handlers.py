"""Chaos from inside the handler: error text with lone surrogates and NULs under
real `ccdash worker`s on Redis."""

from __future__ import annotations

import time

import pytest
from support.redis_fixtures import RedisServer

from chaos import handlers
from chaos.books import read_numbers
from chaos.scenario_run import Chaos

pytestmark = pytest.mark.chaos

N = 500


def test_handler_errors_with_lone_surrogates_and_nuls(
    chaos: Chaos, redis_server: RedisServer
) -> None:
    """Handlers fail with error text holding lone surrogates and NULs (some once, some
    always): acks, publishes and heartbeats go on, the poison ones reach the DLQ with
    their text made safe, the rest are acked, nothing runs twice, SIGTERM is prompt."""
    q = chaos.redis_queue(redis_server)
    fleet = chaos.redis_fleet(q, redis_server.url, ("e1", "e2"), handler="bad_text", max_attempts=3)
    pub = chaos.procs.publisher(q.url(redis_server.url), chaos.published, N, rate=300)
    t0 = time.monotonic()
    chaos.wait_progress(100)
    numbers = read_numbers(chaos.published)
    poison = {m for m, n in numbers.items() if n % handlers.MODULUS == handlers.POISON}
    chaos.wait(lambda: poison <= set(q.dead_by_id()), 20, "the first poison messages dead")
    recover = time.monotonic() - t0
    t_stop = time.monotonic()
    books = chaos.finish_redis(
        q,
        pub,
        fleet,
        N,
        guilty=lambda: {
            m
            for m, n in read_numbers(chaos.published).items()
            if n % handlers.MODULUS == handlers.POISON
        },
    )
    stop_s = time.monotonic() - t_stop
    chaos.row.note(books, recover, runs=len(books.guilty))
    books.check(set(), chaos.procs, acked=q.counters().get("acked", 0))
    assert set(books.dead) == books.guilty, "every poison message is dead, nothing else"
    for entry in q.dead():
        text = entry["e"].decode("utf-8")  # stored text is valid UTF-8 ...
        assert "\x00" not in text and "not found" in text  # ... without NULs, still readable
    assert stop_s < 60
