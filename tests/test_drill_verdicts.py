"""Drills always reach a verdict: by their deadline, and from the whole fleet's work."""

from __future__ import annotations

import asyncio
import math

import pytest
from support.polling import until

from ccdash import Delivery, Engine, EngineConfig
from ccdash.clock import FakeClock
from ccdash.scenario import parse_scenario
from ccdash.scenario.workload import Workload

SCENARIO = """
[scenario]
name = "drills"
duration = 60
seed = 1
drain_timeout = 5
[engine]
consumers = {consumers}
heartbeat_interval = 0.5
heartbeat_timeout = 1.5
visibility_timeout = 3
shutdown_grace = 0.5
[load]
rate = 20
"""


async def test_a_drill_whose_messages_are_never_handled_fails_at_its_deadline() -> None:
    """A kill drill whose held message is never finished elsewhere does not stay pending for
    ever (an open-ended run, as the dashboard's): at its recovery limit it fails, saying why."""
    clock = FakeClock()

    async def handler(d: Delivery) -> None:
        await clock.sleep(10**6 if d.attempt > 1 else 0.5)  # a redelivery never finishes

    sc = parse_scenario(SCENARIO.format(consumers=3))
    engine = sc.make_engine(clock=clock, handler=handler, seed=1)
    workload = Workload(sc, engine, seed=1)
    await engine.start()
    run = asyncio.ensure_future(workload.run(math.inf))
    await clock.advance(1.0)
    rec = await workload.trigger_drill("kill", "busiest", max_recovery_s=3.0)
    assert rec.held  # the victim held work: recovery has something to wait for
    try:
        waited = await clock.run_until(lambda: rec.verdict != "pending", step=0.1, limit=30)
    finally:
        workload.stop()
        stopper = asyncio.ensure_future(engine.stop(grace=0))
        await clock.run_until(lambda: run.done() and stopper.done(), step=0.1, limit=60)
    assert rec.verdict == "fail" and waited <= 3.5
    assert "not handled by any worker" in rec.detail and "within 3 s" in rec.detail


@pytest.mark.slow
async def test_recovery_by_another_worker_of_the_fleet_passes_the_drill(redis_url: str) -> None:
    """Real Redis, two engines on one queue: the victim's messages are acked by the other
    worker, out of sight of this process's ledger; the drill still passes within its limit."""

    async def slow(d: Delivery) -> None:
        await asyncio.sleep(1.0)

    async def fast(d: Delivery) -> None:
        await asyncio.sleep(0.01)

    sc = parse_scenario(SCENARIO.format(consumers=1))
    url = f"{redis_url}&worker=wa&ttl=1"
    engine = sc.make_engine(handler=slow, seed=1, broker=url)
    workload = Workload(sc, engine, seed=1)
    workload.shared_url = url
    other = Engine(
        EngineConfig(
            consumers=2,
            heartbeat_interval=0.5,
            heartbeat_timeout=1.5,
            visibility_timeout=3,
            shutdown_grace=0.5,
        ),
        handler=fast,
        broker=f"{redis_url}&worker=wb&ttl=1",
    )
    await engine.start()
    await other.start()
    run = asyncio.ensure_future(workload.run(math.inf))
    try:
        await until(
            lambda: any(li.consumer_id == "c1" for li in engine.snapshot().leases),
            15,
            "c1 to hold a message",
            step=0.01,
        )
        rec = await workload.trigger_drill("kill", "c1", max_recovery_s=12.0)
        await engine.pause()  # this process handles nothing more: only the other worker can
        assert rec.held
        await until(lambda: rec.verdict != "pending", 20, "the drill's verdict", step=0.1)
        assert rec.verdict == "pass", rec.detail
        assert rec.recovered_after_s is not None and rec.recovered_after_s <= 12.0
    finally:
        workload.stop()
        await asyncio.wait_for(run, 30)
        await engine.stop()
        await other.stop()
