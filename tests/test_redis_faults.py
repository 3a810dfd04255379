"""The Redis broker under faults (#11), on a real redis-server: writes that cannot
succeed, entries that do not decode, pauses of the server, a worker restarted
under its old name. Every wait is bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from ccdash import Engine, EngineConfig
from ccdash.brokers.base import Delivery
from ccdash.brokers.redis.link import Unsendable

Make = Callable[..., Any]


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
