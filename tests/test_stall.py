"""A handler that blocks the event loop: the others are not charged for it, and it is named."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from ccdash import Delivery, Engine, EngineConfig
from ccdash.clock import FakeClock


def stall_cfg(**kw: object) -> EngineConfig:
    base: dict[str, object] = dict(
        consumers=4,
        visibility_timeout=2.0,
        heartbeat_interval=0.5,
        heartbeat_timeout=1.5,
        max_attempts=2,
        backoff_base=0.05,
        backoff_max=0.1,
        shutdown_grace=0.5,
        seed=3,
    )
    base.update(kw)
    return EngineConfig(**base)  # type: ignore[arg-type]


async def test_deliveries_waiting_out_a_blocked_loop_are_not_charged() -> None:
    """Messages leased beside a handler that blocks the loop past their lease are acked once each,
    never redelivered or dead-lettered, and the stall is recorded with the leases it kept."""
    clock = FakeClock()
    runs: Counter[str] = Counter()

    async def handler(d: Delivery) -> None:
        runs[d.message_id] += 1
        if d.body["block"]:
            clock.block(3.0)  # time.sleep inside async def: nothing else runs meanwhile
        else:
            await clock.sleep(0.4)

    async with Engine(stall_cfg(), handler=handler, clock=clock) as engine:
        ids = [await engine.publish({"n": i, "block": i == 2}) for i in range(12)]
        await clock.run_until(lambda: engine.snapshot().acked == len(ids), step=0.1, limit=60)
        snap = engine.snapshot()
        kinds = Counter(e.kind for e in engine.events)
    assert runs == Counter(dict.fromkeys(ids, 1))
    assert snap.redelivered == 0 and snap.dead_lettered == 0
    assert kinds["ack-rejected"] == 0 and kinds["lease-expired"] == 0
    assert sum(c.failed for c in snap.consumers) == 0
    stall = snap.stalls[0]
    assert stall.seconds >= 2.5 and stall.leases_kept >= 1
    assert kinds["loop-stalled"] == 1
    assert any(a.name == "loop-stalled" for a in snap.alerts)


async def test_a_stall_does_not_shelter_a_hung_consumer() -> None:
    """Kept leases are only those of live consumers: a hung one still fails over after a stall
    and its message is handled by another."""
    clock = FakeClock()
    runs: Counter[str] = Counter()

    async def handler(d: Delivery) -> None:
        runs[d.message_id] += 1
        if d.body == "block":
            clock.block(3.0)

    cfg = stall_cfg(consumers=2, heartbeat_timeout=1.9, max_attempts=3)
    async with Engine(cfg, handler=handler, clock=clock) as engine:
        victim = engine.consumer_ids()[0]
        await engine.hang_consumer(victim)
        held = await engine.publish("held")  # round-robin: the hung consumer takes it
        await clock.advance(0.1)
        await engine.publish("block")
        await clock.run_until(lambda: engine.snapshot().acked == 2, step=0.1, limit=60)
        snap = engine.snapshot()
    assert runs[held] == 1 and snap.failovers == 1
    assert snap.stalls and snap.dead_lettered == 0


async def test_the_handler_blocking_the_loop_is_named() -> None:
    """Real time: a handler calling time.sleep in async def is named (consumer, message, line) in
    the snapshot, the event log and an alert, and the messages beside it are handled once each."""
    runs: Counter[str] = Counter()
    culprit: list[tuple[str, str]] = []

    async def handler(d: Delivery) -> None:
        runs[d.message_id] += 1
        if d.body["block"]:
            culprit.append((d.consumer_id, d.message_id))
            time.sleep(1.5)  # noqa: ASYNC251 - the defect under test
        else:
            await asyncio.sleep(0.05)

    cfg = stall_cfg(visibility_timeout=1.0, heartbeat_interval=0.25, heartbeat_timeout=0.6)
    async with Engine(cfg, handler=handler) as engine:
        ids = [await engine.publish({"n": i, "block": i == 5}) for i in range(20)]
        await engine.join(timeout=30)
        snap = engine.snapshot()
        events = [e for e in engine.events if e.kind == "loop-stalled"]
    assert runs == Counter(dict.fromkeys(ids, 1))
    assert snap.redelivered == 0 and snap.dead_lettered == 0
    named = [s for s in snap.stalls if (s.consumer_id, s.message_id) == culprit[0]]
    assert named and named[0].seconds >= 1.0
    assert "test_stall.py" in named[0].where and "handler" in named[0].where
    assert any(culprit[0][1] in e.message and culprit[0][0] in e.message for e in events)
    assert any(a.name == "loop-stalled" and culprit[0][1] in a.message for a in snap.alerts)


async def test_the_headless_report_lists_loop_stalls() -> None:
    """A demo whose handler blocks the loop once: the JSON report lists the stall and the text
    report has a row for it; nothing was redelivered or lost for it."""
    import io

    from ccdash.headless.run import run_demo
    from ccdash.headless.views import PlainView
    from ccdash.scenario import parse_scenario

    clock = FakeClock()
    blocked: list[str] = []

    async def handler(d: Delivery) -> None:
        if not blocked:
            blocked.append(d.message_id)
            clock.block(3.0)
        await clock.sleep(0.01)

    sc = parse_scenario(
        '[scenario]\nname = "s"\nduration = 3\nseed = 1\n[engine]\nconsumers = 3\n'
        "heartbeat_interval = 0.5\nheartbeat_timeout = 1.5\n"
        "visibility_timeout = 2\n[load]\nrate = 20\n"
    )
    out = io.StringIO()
    task = asyncio.ensure_future(run_demo(sc, PlainView(out), clock=clock, handler=handler))
    await clock.run_until(task.done, step=0.05, limit=120)
    report = task.result()
    stalls = report["loop_stalls"]
    assert len(stalls) == 1 and stalls[0]["seconds"] >= 2.5
    assert report["redelivered"] == 0 and report["lost"] == 0 and report["ok"]
    assert "loop stalls" in out.getvalue()


async def blocked_once(broker: str) -> None:
    """Twenty messages beside a handler that blocks the loop past the visibility timeout:
    each is handled once, none dead-lettered, and the stall is recorded."""
    runs: Counter[str] = Counter()

    async def handler(d: Delivery) -> None:
        runs[d.message_id] += 1
        if d.body["block"]:
            time.sleep(2.5)  # noqa: ASYNC251 - the defect under test
        else:
            await asyncio.sleep(0.2)

    cfg = stall_cfg(visibility_timeout=1.5, heartbeat_interval=0.25, heartbeat_timeout=0.6)
    async with Engine(cfg, handler=handler, broker=broker) as engine:
        ids = [await engine.publish({"n": i, "block": i == 5}) for i in range(20)]
        await engine.join(timeout=30)
        snap = engine.snapshot()
    assert runs == Counter(dict.fromkeys(ids, 1))
    assert snap.dead_lettered == 0 and snap.stalls


@pytest.mark.slow
async def test_a_blocked_loop_costs_nothing_on_redis_either(redis_url: str) -> None:
    """Real Redis: the deliveries beside a loop-blocking handler are acked once each, not
    reclaimed as expired by this worker's own reaper nor refused by Redis."""
    await blocked_once(f"{redis_url}&ttl=1")


@pytest.mark.slow
async def test_a_blocked_loop_costs_nothing_on_sqlite_either(tmp_path: Path) -> None:
    """A real SQLite file: the deliveries beside a loop-blocking handler are acked once each,
    not reaped as expired by the store."""
    await blocked_once(f"sqlite:///{tmp_path / 'q.db'}")
