"""The study text's fake-clock behaviours (tests/test_competing_consumer.py), on the
Redis broker: load balancing and failover. (Basic operation runs on real time, so the
original runs on Redis as it stands: test_competing_consumer_basic_operation[redis].)

Real time on a private redis-server (tests/support/redis_fixtures.py), each test on its
own queue; the FakeClock runs of the originals become short real-time runs here,
every wait bounded. The engine's dispatcher picks the consumer for each message,
so the shares hold although the Redis worker reads ahead into a local buffer.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from support.polling import until

from ccdash import Delivery, Engine, EngineConfig

pytestmark = [pytest.mark.slow]


def on_redis(redis_url: str) -> str:
    """The Engine broker URL for this test's queue (heartbeat TTL 0.6 s)."""
    return redis_url + "&ttl=0.6"


class Recorder:
    """A handler that sleeps a real latency and records who handled what, and when."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.done: list[tuple[str, str, float]] = []  # (message id, consumer, finished at)

    async def __call__(self, d: Delivery) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)
        self.done.append((d.message_id, d.consumer_id, time.monotonic()))

    def shares(self) -> Counter[str]:
        return Counter(c for _, c, _ in self.done)


async def _paced_run(
    redis_url: str, balancer: str, *, weights: dict[int, int] | None = None, n: int = 200
) -> Counter[str]:
    """Publish n messages at a pace the pool handles with room to spare: each is done
    (2 ms) long before the next arrives (15 ms)."""
    rec = Recorder(latency=0.002)
    cfg = EngineConfig(consumers=4, balancer=balancer, prefetch=1, seed=7)
    async with Engine(cfg, handler=rec, broker=on_redis(redis_url)) as engine:
        ids = engine.consumer_ids()
        for idx, w in (weights or {}).items():
            engine.set_weight(ids[idx], w)
        for i in range(n):
            await engine.publish({"n": i})
            await asyncio.sleep(0.015)
        await until(lambda: len(rec.done) == n, 10, "every message done", step=0.01)
        await engine.join(timeout=10)
    return rec.shares()


async def test_competing_consumer_load_balancing(redis_url: str) -> None:
    """Paced load below capacity: round-robin gives each of 4 consumers 25% +- 5%;
    weighted 3:1:1:1 gives the heavy one 50% +- 7%."""
    rr = await _paced_run(redis_url + "-rr", "round-robin")
    total = sum(rr.values())
    assert total == 200 and len(rr) == 4, rr
    for share in rr.values():
        assert abs(share / total - 0.25) <= 0.05, rr

    weighted = await _paced_run(redis_url + "-w", "weighted", weights={0: 3})
    heavy = weighted.most_common(1)[0][1] / sum(weighted.values())
    assert abs(heavy - 0.5) <= 0.07, weighted


async def test_competing_consumer_failover(redis_url: str) -> None:
    """Visibility timeout 60 s: a killed consumer's leases are handled elsewhere within
    heartbeat_timeout + 1 s; a hung one is detected within 2 x heartbeat_timeout and
    replaced; nothing is lost. (Real time: a 2 s heartbeat timeout leaves 2 s for a
    loaded machine; with 1 s, detection took 1.0-1.2 s of a 2 s bound.)"""
    rec = Recorder(latency=0.1)
    cfg = EngineConfig(
        consumers=4,
        prefetch=3,
        visibility_timeout=60.0,
        heartbeat_interval=0.2,
        heartbeat_timeout=2.0,
        seed=1,
    )
    # The engine sizes the read-ahead to what its consumers can hold (as `ccdash worker`
    # does), so messages handed back by the killed consumer are not stuck behind it.
    async with Engine(cfg, handler=rec, broker=on_redis(redis_url)) as engine:
        ids = [await engine.publish({"n": i}) for i in range(120)]
        victim = engine.consumer_ids()[0]

        def victim_holds() -> set[str]:
            return {li.message_id for li in engine.snapshot().leases if li.consumer_id == victim}

        await until(lambda: len(victim_holds()) >= 2, 5, "the victim holding two leases", step=0.01)
        held = victim_holds()
        assert held, "the victim should hold leases"
        released = await engine.kill_consumer(victim)
        assert released == len(held)
        took = await until(
            lambda: held <= {m for m, c, _ in rec.done if c != victim},
            cfg.heartbeat_timeout + 1.0,
            "the victim's leases done by others",
            step=0.01,
        )
        assert took <= cfg.heartbeat_timeout + 1.0

        hung = engine.consumer_ids()[0]
        await engine.hang_consumer(hung)
        detect = await until(
            lambda: any(c.id == hung and c.state == "failed" for c in engine.snapshot().consumers),
            2 * cfg.heartbeat_timeout,
            "the hung consumer failed",
            step=0.01,
        )
        assert detect <= 2 * cfg.heartbeat_timeout
        await until(lambda: len(engine.consumer_ids()) == 4, 5, "four consumers again", step=0.01)
        assert hung not in engine.consumer_ids()

        await engine.join(timeout=20)
        snap = engine.snapshot()
    assert {m for m, _, _ in rec.done} == set(ids)
    assert snap.published == snap.acked + snap.queue.dead == len(ids)
    assert snap.queue.dead == 0
    assert snap.failovers == 2
    failed_alerts = [a for a in snap.alerts if a.name == "consumer-failed"]
    assert {a.key for a in failed_alerts} == {victim, hung}
