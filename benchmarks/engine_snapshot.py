"""How long engine.snapshot() takes with 200 consumers holding 10,000 leases.

Run: python benchmarks/engine_snapshot.py [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from ccdash import Delivery, Engine, EngineConfig
from ccdash.clock import FakeClock


async def main(quick: bool) -> None:
    consumers, leases = (20, 1000) if quick else (200, 10_000)
    clock = FakeClock()
    gate = asyncio.Event()

    async def held(d: Delivery) -> None:
        await gate.wait()

    cfg = EngineConfig(
        consumers=consumers, max_consumers=consumers, prefetch=2 * leases // consumers, seed=1
    )  # refills stop at half
    engine = Engine(cfg, handler=held, clock=clock)
    async with engine:
        for i in range(leases):
            await engine.publish({"i": i})
        await clock.advance(0.01)
        await engine.health.tick()  # fill the per-consumer latency caches
        snap = engine.snapshot()
        assert snap.queue.in_flight == leases, snap.queue
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            engine.snapshot()
            times.append(time.perf_counter() - t0)
        tick_t0 = time.perf_counter()
        await engine.health.tick()
        tick = time.perf_counter() - tick_t0
        gate.set()
        await clock.run_until(lambda: engine.snapshot().acked == leases, limit=60)
        stopper = asyncio.create_task(engine.stop())
        await clock.run_until(stopper.done, limit=60)
    print(
        f"snapshot with {consumers} consumers and {leases} leases: "
        f"median {statistics.median(times) * 1e3:.2f} ms, max {max(times) * 1e3:.2f} ms "
        f"(target: well under 5 ms); health tick {tick * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main("--quick" in sys.argv))
