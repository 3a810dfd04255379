"""Prefetch is honoured: a consumer with room is filled up to its prefetch whenever work
is ready, however the messages arrive."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ccdash import Delivery, Engine, EngineConfig
from ccdash.clock import FakeClock


@pytest.mark.parametrize("batched", [False, True])
async def test_slow_consumers_each_hold_their_whole_prefetch(batched: bool) -> None:
    """4 consumers at prefetch 5 behind a slow handler hold 5 each of 20 messages,
    published one at a time or in one batch: none waits as ready."""
    clock = FakeClock()
    release = asyncio.Event()

    async def slow(_: Delivery) -> None:
        await release.wait()

    cfg = EngineConfig(consumers=4, prefetch=5, visibility_timeout=60.0, seed=1)
    engine = Engine(cfg, handler=slow, clock=clock)
    await engine.start()
    try:
        if batched:
            await engine.publish_many(list(range(20)))
        else:
            for i in range(20):
                await engine.publish(i)
        await clock.advance(0.1)
        snap = engine.snapshot()
        assert (snap.queue.in_flight, snap.queue.ready) == (20, 0)
        assert sorted(c.in_flight for c in snap.consumers) == [5, 5, 5, 5]
    finally:
        release.set()
        await engine.stop(grace=0)


async def test_a_consumer_below_its_prefetch_takes_new_work_at_once() -> None:
    """A consumer that finished one of its 5 (so holds 4, above its refill mark) is
    given the next published message rather than leaving it ready."""
    clock = FakeClock()
    gates: dict[int, asyncio.Event] = {i: asyncio.Event() for i in range(6)}

    async def gated(d: Delivery) -> None:
        await gates[d.body].wait()

    cfg = EngineConfig(consumers=1, prefetch=5, visibility_timeout=60.0, seed=1)
    engine = Engine(cfg, handler=gated, clock=clock)
    await engine.start()
    try:
        for i in range(5):
            await engine.publish(i)
        await clock.advance(0.1)
        gates[0].set()
        await clock.advance(0.1)
        assert engine.snapshot().acked == 1
        await engine.publish(5)
        await clock.advance(0.1)
        snap = engine.snapshot()
        assert (snap.queue.in_flight, snap.queue.ready) == (5, 0)
    finally:
        for g in gates.values():
            g.set()
        await engine.stop(grace=0)


async def test_work_arriving_from_the_broker_fills_spare_slots_too() -> None:
    """Messages a broker makes ready on its own (here: retries coming due) go to a
    consumer that has spare slots above its refill mark, up to its prefetch."""
    clock = FakeClock()
    release = asyncio.Event()
    failed_once: set[int] = set()

    async def handler(d: Delivery) -> None:
        if d.body >= 100 and d.body not in failed_once:
            failed_once.add(d.body)
            raise RuntimeError("once")
        await release.wait()

    cfg = EngineConfig(
        consumers=1, prefetch=6, visibility_timeout=60.0, backoff_base=1.0, backoff_max=1.0, seed=1
    )
    engine = Engine(cfg, handler=handler, clock=clock)
    await engine.start()
    try:
        for i in (100, 101, 102):  # fail at once, come back after up to 1 s
            await engine.publish(i)
        await clock.advance(0.01)
        for i in range(4):  # the consumer now holds 4: above its mark (3)
            await engine.publish(i)
        await clock.advance(0.01)
        assert engine.snapshot().queue.in_flight == 4
        await clock.advance(2.0)  # the retries are ready: 2 fit
        snap = engine.snapshot()
        assert (snap.queue.in_flight, snap.queue.ready) == (6, 1)
    finally:
        release.set()
        await engine.stop(grace=0)


async def test_spare_slots_all_filled_at_once_take_no_balancer_pick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When what is ready fills every spare slot, there is no choice to make: the
    spare slots are filled without a balancer pick per message, each up to its prefetch."""
    clock = FakeClock()
    gates: dict[int, asyncio.Event] = {i: asyncio.Event() for i in range(24)}

    async def gated(d: Delivery) -> None:
        await gates[d.body].wait()

    cfg = EngineConfig(consumers=2, prefetch=8, visibility_timeout=60.0, seed=1)
    engine = Engine(cfg, handler=gated, clock=clock)
    await engine.start()
    try:
        await engine.publish_many(list(range(16)))
        await clock.advance(0.1)
        for c in engine.consumers.values():  # each finishes its first two: 6 held, 2 spare
            for d in list(c.current) + list(c.buffer)[:1]:
                gates[d.body].set()
                await clock.advance(0.01)
        assert sorted(c.held for c in engine.consumers.values()) == [6, 6]
        picks = [0]
        balancer = engine.dispatcher._spare_balancer
        real = balancer.pick

        def counting(cands: Any) -> Any:
            picks[0] += 1
            return real(cands)

        monkeypatch.setattr(balancer, "pick", counting)
        await engine.publish_many(list(range(16, 20)))
        await clock.advance(0.1)
        assert sorted(c.held for c in engine.consumers.values()) == [8, 8]
        assert picks[0] == 0
    finally:
        for g in gates.values():
            g.set()
        await engine.stop(grace=0)


async def test_a_consumer_holding_deliveries_is_shown_processing_not_idle() -> None:
    """A batch consumer lingering with 2 buffered deliveries holds work: its snapshot
    state is `processing` (an operator reads `idle` as "no work"); with nothing held
    it is `idle` again."""
    clock = FakeClock()

    async def batch(ds: list[Delivery]) -> None:
        return None

    cfg = EngineConfig(
        consumers=1, batch_size=20, batch_linger=5.0, visibility_timeout=60.0, seed=1
    )
    engine = Engine(cfg, batch_handler=batch, clock=clock)
    await engine.start()
    try:
        await engine.publish(1)
        await engine.publish(2)
        await clock.advance(0.1)  # delivered, still lingering for a fuller batch
        (c,) = engine.snapshot().consumers
        assert (c.state, c.in_flight) == ("processing", 2)
        await clock.advance(5.0)  # the linger ran out: handled and acked
        await engine.join(timeout=1.0)
        (c,) = engine.snapshot().consumers
        assert (c.state, c.in_flight) == ("idle", 0)
    finally:
        await engine.stop(grace=0)
