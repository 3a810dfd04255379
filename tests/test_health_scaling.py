"""The health tick costs what changed, not what exists: no per-consumer histogram
merges, no look at leases that are not due, and due ones extended in batches."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ccdash import Delivery, Engine, EngineConfig
from ccdash.clock import FakeClock
from ccdash.engine.consumer import Consumer
from ccdash.engine.metrics import LatencyHistogram, empty_counts, quantile_of


def cfg(**kw: Any) -> EngineConfig:
    base: dict[str, Any] = dict(
        consumers=4,
        visibility_timeout=60.0,
        heartbeat_interval=10.0,
        heartbeat_timeout=30.0,
        seed=5,
    )
    base.update(kw)
    return EngineConfig(**base)


async def test_tick_takes_pool_latency_from_one_histogram_without_merging_consumers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With 64 consumers that have latencies, a tick merges no consumer's histogram and
    still reports the pool's p50/p99 as all of their latencies give them."""
    clock = FakeClock()

    async def handler(d: Delivery) -> None:
        await clock.sleep(0.001 * (1 + d.body % 50))

    async with Engine(cfg(consumers=64, max_consumers=64), handler=handler, clock=clock) as engine:
        for i in range(640):
            await engine.publish(i)
        await clock.run_until(lambda: engine.snapshot().acked == 640, step=0.005)
        merged = empty_counts()
        for c in engine.consumers.values():
            c.hist.merge_into(merged)
        merges = [0]
        real_merge = LatencyHistogram.merge_into

        def counting(self: LatencyHistogram, counts: list[int]) -> None:
            merges[0] += 1
            real_merge(self, counts)

        monkeypatch.setattr(LatencyHistogram, "merge_into", counting)
        await engine.health.tick()
        assert merges[0] == 0
        h = engine.gauges
        assert (h.pool_p50, h.pool_p99) == (quantile_of(merged, 0.5), quantile_of(merged, 0.99))


async def test_tick_with_nothing_due_reads_no_held_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    """With hundreds of leases held far from their deadline, a tick looks at none of them; once
    they are due, the tick extends every one."""
    clock = FakeClock()
    release = asyncio.Event()

    async def hold(_: Delivery) -> None:
        await release.wait()

    engine = Engine(cfg(prefetch=100), handler=hold, clock=clock)
    await engine.start()
    try:
        await engine.publish_many(list(range(400)))
        await clock.advance(0.1)
        held = engine.snapshot().queue.in_flight
        assert held >= 200
        looked = [0]
        real = Consumer.held_deliveries

        def counting(self: Consumer) -> list[Delivery]:
            out = real(self)
            looked[0] += len(out)
            return out

        monkeypatch.setattr(Consumer, "held_deliveries", counting)
        await engine.health.tick()
        assert looked[0] == 0
        first = engine.broker.leases(1)[0].deadline
        await clock.advance(41.0)  # the loop's own ticks extend them once due
        assert engine.broker.leases(1)[0].deadline > first
        assert engine.snapshot().queue.in_flight == held
    finally:
        release.set()
        await engine.stop(grace=0)


async def test_extending_many_due_leases_lets_the_loop_run_between_batches() -> None:
    """A tick extending 3,000 due leases yields to the event loop between batches,
    so no single step of it stalls everything else."""
    clock = FakeClock()
    release = asyncio.Event()

    async def hold(_: Delivery) -> None:
        await release.wait()

    engine = Engine(cfg(consumers=10, prefetch=600), handler=hold, clock=clock)
    await engine.start()
    try:
        for i in range(0, 6000, 1000):
            await engine.publish_many(list(range(i, i + 1000)))
        await clock.advance(0.1)
        held = engine.snapshot().queue.in_flight
        assert held >= 3000
        engine.health.stop()  # only the tick below runs
        await clock.advance(31.0)  # every lease within half a visibility timeout
        steps = [0]
        ticking = True

        async def other_work() -> None:
            while ticking:
                steps[0] += 1
                await asyncio.sleep(0)

        other = asyncio.create_task(other_work())
        await asyncio.sleep(0)
        steps[0] = 0
        await engine.health.tick()
        ticking = False
        await other
        assert steps[0] >= held // 1000 - 1
        # Every lease kept: the soonest runs out over half a visibility timeout from now
        # (the tick that came before the stop extended some of them ahead of time).
        assert engine.broker.leases(1)[0].deadline > clock.now() + 30
    finally:
        release.set()
        await engine.stop(grace=0)


async def test_leases_taken_at_once_are_kept_a_share_per_tick_not_all_in_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With 6,000 leases taken at once (visibility 4 s, a tick every second: each kept
    lease comes due again 3 ticks later), no tick extends much more than a third of
    them: the rest go ahead of time in the ticks before, so they never all come due
    in one tick (on Redis such a tick ran for seconds while the last of them ran out).
    Every lease is kept: none expires, none is delivered again."""
    clock = FakeClock()
    release = asyncio.Event()

    async def hold(_: Delivery) -> None:
        await release.wait()

    config = cfg(
        consumers=30,
        max_consumers=30,
        prefetch=200,
        visibility_timeout=4.0,
        heartbeat_interval=1.0,
        heartbeat_timeout=3.0,
    )
    engine = Engine(config, handler=hold, clock=clock)
    await engine.start()
    try:
        for i in range(0, 6000, 1000):
            await engine.publish_many(list(range(i, i + 1000)))
        await clock.advance(0.01)
        held = engine.snapshot().queue.in_flight
        assert held > 3 * 1000  # a tick's share is more than a batch
        per_tick: list[int] = []
        real_extend = engine.broker.extend_many
        real_tick = engine.health.tick

        async def counting(receipts: Any, seconds: float) -> list[float | None]:
            per_tick[-1] += len(receipts)
            return await real_extend(receipts, seconds)

        async def tick() -> None:
            per_tick.append(0)
            await real_tick()

        monkeypatch.setattr(engine.broker, "extend_many", counting)
        monkeypatch.setattr(engine.health, "tick", tick)
        for _ in range(12):
            await clock.advance(1.0)
        assert sum(per_tick) >= 3 * held  # each kept several times over 12 s
        assert max(per_tick) <= -(-held // 3) + 200  # a share, and one consumer's overshoot
        snap = engine.snapshot()
        assert (snap.queue.in_flight, snap.redelivered) == (held, 0)
    finally:
        release.set()
        await engine.stop(grace=0)
