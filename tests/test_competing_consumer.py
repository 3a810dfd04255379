"""The study text's three behaviours: basic operation, load balancing, failover.

Each runs on every broker it can (the `engines` fixture, tests/support/engine_harness.py):
basic operation on real time, on all three; the fake-clock runs on memory and SQLite.
Their Redis variants on short real times are in tests/test_redis_competing_consumer.py."""

from __future__ import annotations

import asyncio
from collections import Counter

from support.broker_harness import fake_clock_only
from support.engine_harness import Engines

from ccdash import Delivery, EngineConfig
from ccdash.clock import FakeClock


class Recorder:
    """A handler that sleeps a fake latency and records who handled what."""

    def __init__(self, clock: FakeClock, latency: float = 0.0) -> None:
        self.clock = clock
        self.latency = latency
        self.slow: dict[str, float] = {}  # consumer id -> latency override
        self.slow_ids: set[str] = set()  # message ids that take long
        self.done: list[tuple[str, str, float]] = []  # (message id, consumer, finished at)

    async def __call__(self, d: Delivery) -> None:
        t = self.latency
        if d.consumer_id in self.slow:
            t = self.slow[d.consumer_id]
        if d.message_id in self.slow_ids:
            t = 5.0
        if t:
            await self.clock.sleep(t)
        self.done.append((d.message_id, d.consumer_id, self.clock.now()))

    def shares(self) -> Counter[str]:
        return Counter(c for _, c, _ in self.done)


async def test_competing_consumer_basic_operation(engines: Engines) -> None:
    """4 consumers, 1,000 messages: each handled and acked exactly once, all consumers worked."""
    seen: Counter[str] = Counter()
    workers: Counter[str] = Counter()

    async def handler(d: Delivery) -> None:
        seen[d.message_id] += 1
        workers[d.consumer_id] += 1
        await asyncio.sleep(0)

    async with engines.make(EngineConfig(consumers=4), handler=handler) as engine:
        ids = [await engine.publish({"n": i}) for i in range(1000)]
        await engine.join(timeout=30)
        snap = engine.snapshot()
    assert set(seen) == set(ids)
    assert max(seen.values()) == 1
    assert snap.acked == snap.published == 1000
    assert snap.queue.dead == 0 and snap.redelivered == 0
    assert len(workers) == 4 and min(workers.values()) > 0


async def _paced_run(
    engines: Engines, balancer: str, *, weights: dict[int, int] | None = None, n: int = 400
) -> Counter[str]:
    """Publish n messages at a pace the pool handles with room to spare."""
    clock = engines.clock()
    rec = Recorder(clock, latency=0.05)
    cfg = EngineConfig(consumers=4, balancer=balancer, prefetch=1, seed=7)
    async with engines.make(cfg, handler=rec, clock=clock) as engine:
        ids = engine.consumer_ids()
        for idx, w in (weights or {}).items():
            engine.set_weight(ids[idx], w)
        for i in range(n):
            await engine.publish({"n": i})
            await clock.advance(0.06)  # each message done before the next arrives
        await clock.run_until(lambda: len(rec.done) == n)
    return rec.shares()


async def _saturated_run(engines: Engines, balancer: str) -> tuple[Counter[str], float]:
    """Saturation, prefetch 4, one consumer 10x slower: its share and the p99 latency."""
    clock = engines.clock()
    rec = Recorder(clock, latency=0.01)
    cfg = EngineConfig(consumers=4, balancer=balancer, prefetch=4, seed=3)
    published: dict[str, float] = {}
    async with engines.make(cfg, handler=rec, clock=clock) as engine:
        slow_id = engine.consumer_ids()[0]
        rec.slow[slow_id] = 0.1
        for _ in range(40):  # 2 s at 300 msg/s, above the pool's ~310 msg/s? near it
            for _ in range(6):
                published[await engine.publish(b"x")] = clock.now()
            await clock.advance(0.02)
        await clock.run_until(lambda: len(rec.done) == len(published))
    latencies = sorted(t - published[m] for m, _, t in rec.done)
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    shares = rec.shares()
    return Counter({("slow" if c == slow_id else c): v for c, v in shares.items()}), p99


@fake_clock_only
async def test_competing_consumer_load_balancing(engines: Engines) -> None:
    """Round-robin and weighted share as configured; least-inflight and p2c-ewma avoid
    a slow consumer and cut p99 latency compared with round-robin."""
    rr = await _paced_run(engines, "round-robin")
    total = sum(rr.values())
    assert len(rr) == 4
    for share in rr.values():
        assert abs(share / total - 0.25) <= 0.05, rr

    weighted = await _paced_run(engines, "weighted", weights={0: 3})
    heavy = weighted.most_common(1)[0][1] / sum(weighted.values())
    assert abs(heavy - 0.5) <= 0.07, weighted

    rr_shares, rr_p99 = await _saturated_run(engines, "round-robin")
    for name in ("least-inflight", "p2c-ewma"):
        shares, p99 = await _saturated_run(engines, name)
        total = sum(shares.values())
        assert shares["slow"] / total < rr_shares["slow"] / sum(rr_shares.values()), name
        assert p99 < rr_p99, (name, p99, rr_p99)
        if name == "p2c-ewma":
            assert shares["slow"] / total < 0.15, shares


@fake_clock_only
async def test_competing_consumer_failover(engines: Engines) -> None:
    """A killed consumer's leases are handled elsewhere within heartbeat_timeout + 1 s
    (visibility timeout 60 s); a hung one is detected within 2 x heartbeat_timeout and
    replaced; nothing is lost and alerts are recorded."""
    clock = engines.clock()
    rec = Recorder(clock, latency=0.5)
    cfg = EngineConfig(
        consumers=4,
        prefetch=3,
        visibility_timeout=60.0,
        heartbeat_interval=0.5,
        heartbeat_timeout=2.0,
        seed=1,
    )
    async with engines.make(cfg, handler=rec, clock=clock) as engine:
        ids = [await engine.publish({"n": i}) for i in range(60)]
        await clock.advance(0.1)
        victim = engine.consumer_ids()[0]
        held = {li.message_id for li in engine.snapshot().leases if li.consumer_id == victim}
        assert held, "the victim should hold leases"
        released = await engine.kill_consumer(victim)
        assert released == len(held)
        killed_at = clock.now()
        took = await clock.run_until(
            lambda: held <= {m for m, c, _ in rec.done if c != victim}, limit=30
        )
        assert took <= cfg.heartbeat_timeout + 1.0
        assert clock.now() - killed_at == took

        hung = engine.consumer_ids()[0]
        await engine.hang_consumer(hung)
        detect = await clock.run_until(
            lambda: any(c.id == hung and c.state == "failed" for c in engine.snapshot().consumers)
        )
        assert detect <= 2 * cfg.heartbeat_timeout
        await clock.run_until(lambda: len(engine.consumer_ids()) == 4, limit=5)
        assert hung not in engine.consumer_ids()

        await clock.run_until(lambda: engine.snapshot().acked == len(ids), limit=120)
        snap = engine.snapshot()
    assert {m for m, _, _ in rec.done} == set(ids)
    assert snap.published == snap.acked + snap.queue.dead == len(ids)
    assert snap.failovers == 2
    failed_alerts = [a for a in snap.alerts if a.name == "consumer-failed"]
    assert {a.key for a in failed_alerts} == {victim, hung}
