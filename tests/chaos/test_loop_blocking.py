"""Chaos from inside the handler: a handler that blocks the event loop for longer
than the visibility timeout in a real `ccdash --demo` run, on SQLite and on Redis."""

from __future__ import annotations

import json
import time

import pytest
from support.redis_fixtures import RedisServer

from chaos import handlers
from chaos.books import Books, read_ledger
from chaos.holdings import RedisQueue, SqliteFile
from chaos.scenario_run import Chaos

pytestmark = pytest.mark.chaos


BLOCK_S = 2.5  # the scenario's visibility timeout is 2 s
BLOCK_EVERY = 100
CONSUMERS, PREFETCH = 4, 2  # as in scenario.toml


@pytest.mark.parametrize("broker", ["sqlite", "redis"])
def test_loop_blocking_handler_does_not_dead_letter_innocent_messages(
    chaos: Chaos, redis_server: RedisServer, broker: str
) -> None:
    """`ccdash --demo` whose handler blocks the event loop (time.sleep in async def)
    for longer than the lease on one message in a hundred: no innocent message is
    dead-lettered or charged for the stall, 0 lost, and the report agrees with the
    ledger."""
    held: SqliteFile | RedisQueue
    if broker == "sqlite":
        held = SqliteFile(chaos.tmp / "q.db")
        url = f"sqlite:///{held.path}"
    else:
        held = chaos.redis_queue(redis_server)
        url = held.url(redis_server.url) + "&ttl=1"  # presence below the 2 s lease
    report_path = chaos.tmp / "report.json"
    demo = chaos.procs.demo(
        "demo",
        url,
        report_path,
        handler="blocking",
        duration=3,
        CHAOS_BLOCK_S=str(BLOCK_S),
        CHAOS_BLOCK_EVERY=str(BLOCK_EVERY),
    )
    t0 = time.monotonic()
    code = demo.wait_exit(90)
    took = time.monotonic() - t0
    ledger = read_ledger(chaos.ledger)
    numbers = {c.mid: c.n for c in ledger if c.n is not None}
    if isinstance(held, SqliteFile):
        numbers |= held.numbers()
    blockers = {m for m, n in numbers.items() if n % BLOCK_EVERY == handlers.BLOCKER}
    books = Books.of(
        (),
        chaos.ledger,
        held.dead_by_id(),
        held.queued(),
        guilty=blockers,
        expected=held.counters()["published"],
    )
    chaos.row.note(books, took, runs=len(blockers))
    assert code == 0, demo.stdout()[-3000:] + demo.tail()
    report = json.loads(report_path.read_text())
    books.check(None, chaos.procs)
    assert blockers, "no message blocked the loop: the scenario tested nothing"
    retried = [c for c in ledger if c.mid not in blockers and c.attempt > 1]
    assert not retried, f"innocent deliveries were charged an attempt: {retried[:5]}"
    # At most what the consumers held at each stall may run again.
    in_flight = len(blockers) * CONSUMERS * PREFETCH
    assert len(books.duplicated - blockers) <= in_flight
    assert report["lost"] == 0 and report["duplicates"] == books.duplicates
    assert report["published"] == books.expected
