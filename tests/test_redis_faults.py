"""The Redis broker under faults (#11), on a real redis-server: writes that cannot
succeed, entries that do not decode, pauses of the server, a worker restarted
under its old name. Every wait is bounded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_fixtures import RedisServer
from test_redis_fleet import Fleet, until

from ccdash import Engine, EngineConfig
from ccdash.brokers.base import Delivery, QueueConfig
from ccdash.brokers.redis import RedisBroker
from ccdash.brokers.redis.link import Unsendable
from ccdash.tui.fleet_feed import FleetFeed

Make = Callable[..., Any]


@pytest.fixture
def fleet(redis_server: RedisServer, tmp_path: Path) -> Iterator[Fleet]:
    """Worker processes on a queue of their own; any left running are killed."""
    f = Fleet(f"{redis_server.url}?queue=faults-{uuid.uuid4().hex[:8]}", tmp_path)
    yield f
    for p in f.procs.values():
        if p.poll() is None:
            p.kill()
            p.wait()


async def test_unsendable_command_fails_alone_and_the_batch_goes_on(redis_broker: Make) -> None:
    """A command that cannot be encoded for Redis fails on its own; the ack queued
    beside it reaches Redis and the next writes still flow."""
    broker = await redis_broker()
    await broker.publish(b"a")
    async with asyncio.timeout(10):
        await broker.wait_ready()
        [d] = await broker.receive(["c"])
        bad = broker.flusher.call(("SET", broker.keys.prefix + "x", "f\udcff"))
        broker.ack_nowait(d.receipt)
        with pytest.raises(Unsendable):
            await bad
        await broker.flush()
        await broker.publish(b"b")
        await broker.refresh()
    stats = broker.stats()
    assert (stats.acked, stats.ready) == (1, 1)


async def test_handler_error_with_lone_surrogate_does_not_stop_a_redis_engine(
    redis_url: str,
) -> None:
    """Handlers failing with an undecodable filename in the error text: every other
    message is still acked, the failing ones are dead-lettered with the text escaped,
    and join returns."""

    async def handler(d: Delivery) -> None:
        if d.body["n"] % 10 == 0:
            raise OSError(f"cannot open 'data-{d.body['n']}-\udcff.csv'")

    cfg = EngineConfig(consumers=4, prefetch=2, max_attempts=1, visibility_timeout=10.0, seed=1)
    async with Engine(cfg, handler=handler, broker=redis_url + "&ttl=0.6") as engine:
        for i in range(100):
            await engine.publish({"n": i})
        await engine.join(timeout=20)
        await engine.broker.refresh()  # type: ignore[attr-defined]
        snap = engine.snapshot()
    assert (snap.acked, snap.queue.dead) == (90, 10)
    errors = {dl.last_error for dl in snap.dead_letters}
    assert "OSError: cannot open 'data-0-\\udcff.csv'" in errors


# -- the fleet view ----------------------------------------------------------------


async def _dead_letter_one(url: str) -> str:
    """Publish one message and dead-letter it (max_attempts 1) on the fleet's queue."""
    broker = RedisBroker.from_url(url, QueueConfig(max_attempts=1), worker="dlq-maker")
    await broker.open()
    try:
        mid = await broker.publish({"poison": True})
        async with asyncio.timeout(10):
            await broker.wait_ready()
            [d] = await broker.receive(["c"])
            assert await broker.nack(d.receipt, "boom \x1b[31m") is True
    finally:
        await broker.close()
    return mid


async def test_fleet_view_reads_dead_letters_and_drops_a_sigkilled_worker(
    fleet: Fleet,
) -> None:
    """With a dead letter in the shared DLQ the fleet view still reads every worker
    and the DLQ, and a SIGKILLed worker leaves it within about one heartbeat TTL."""
    ttl = 1.5
    mid = await _dead_letter_one(fleet.url)
    for name in ("va", "vb"):
        fleet.spawn(name, ttl=ttl, concurrency=2)
    said: list[str] = []
    feed = FleetFeed(fleet.url, "dashboard", poll_every=0.1)
    task = asyncio.ensure_future(feed.run(lambda msg, err: said.append(msg)))
    try:
        await until(lambda: {w.name for w in feed.workers()} == {"va", "vb"}, 20,
                    "both workers in the view")
        snap = feed.snapshot
        assert snap is not None and [d.message_id for d in snap.dead_letters] == [mid]
        assert snap.dead_letters[0].last_error == "boom \\x1b[31m"
        fleet.procs["va"].kill()
        took = await until(lambda: {w.name for w in feed.workers()} == {"vb"}, 20,
                           "the killed worker to leave the view")
        assert took < ttl + 1.5, f"left the view after {took:.1f}s (TTL {ttl}s)"
        assert said == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert fleet.stop_all()["vb"] == 0


async def test_fleet_view_error_names_the_error_sanitised() -> None:
    """A failed fleet read is reported with the error's type and its (sanitised)
    message, not the type alone."""

    class Broken:
        async def snapshot(self) -> None:
            raise ValueError("reply shape \x1b]52;c;evil\x07 unexpected")

        async def close(self) -> None:
            return None

    said: list[tuple[str, bool]] = []
    feed = FleetFeed("redis://u:sekrit@127.0.0.1:1/0", "me", view=Broken(),  # type: ignore[arg-type]
                     poll_every=0.01)
    task = asyncio.ensure_future(feed.run(lambda msg, err: said.append((msg, err))))
    try:
        await until(lambda: said, 5, "the error report")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    [(msg, error)] = said
    assert error and "ValueError: reply shape \\x1b]52;c;evil\\x07 unexpected" in msg
    assert "sekrit" not in msg and "\x1b" not in msg
