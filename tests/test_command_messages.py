"""What the engine says an operator's command did: counts read as English, one or many."""

from __future__ import annotations

from ccdash import Delivery, Engine, EngineConfig
from ccdash.clock import FakeClock


def test_counted_says_one_thing_or_many() -> None:
    """1 dead letter, 2 dead letters, 0 dead letters; an irregular plural when given."""
    from ccdash.text import counted

    assert counted(1, "dead letter") == "1 dead letter"
    assert counted(2, "dead letter") == "2 dead letters"
    assert counted(0, "lease") == "0 leases"
    assert counted(1, "was", "were") == "1 was"
    assert counted(3, "was", "were") == "3 were"


async def test_one_dead_letter_redriven_and_purged_is_singular() -> None:
    """Redriving, then purging, one dead letter says "1 dead letter", not "1 dead letters";
    a consumer killed holding one message says "1 lease released"."""
    clock = FakeClock()
    fail = True

    async def flaky(d: Delivery) -> None:
        if fail:
            raise RuntimeError("down")

    cfg = EngineConfig(consumers=1, max_attempts=1, heartbeat_interval=0.5, seed=1)
    async with Engine(cfg, handler=flaky, clock=clock) as engine:
        await engine.publish({"x": 1})
        await clock.run_until(lambda: engine.snapshot().queue.dead == 1, limit=30)
        assert await engine.redrive() == 1
        await clock.run_until(lambda: engine.snapshot().queue.dead == 1, limit=30)
        assert await engine.purge_dead() == 1
        fail = False
        messages = [e.message for e in engine.events]
    assert "1 dead letter redriven" in messages, messages
    assert "1 dead letter purged" in messages, messages
    assert any(m.endswith("dead-lettered after 1 attempt: RuntimeError: down") for m in messages)
    assert not any("1 dead letters" in m or "1 attempts" in m for m in messages), messages


async def test_a_consumer_killed_holding_one_message_releases_one_lease() -> None:
    """kill_consumer on a consumer holding one message: "1 lease released"."""
    clock = FakeClock()
    started = False

    async def slow(d: Delivery) -> None:
        nonlocal started
        started = True
        await clock.sleep(100)

    cfg = EngineConfig(consumers=1, heartbeat_interval=0.5, seed=1, shutdown_grace=0)
    async with Engine(cfg, handler=slow, clock=clock) as engine:
        await engine.publish({"x": 1})
        await clock.run_until(lambda: started, limit=30)
        cid = engine.snapshot().consumers[0].id
        assert await engine.kill_consumer(cid) == 1
        messages = [e.message for e in engine.events]
    assert any(m.endswith("(killed); 1 lease released") for m in messages), messages


async def test_an_engine_stopping_with_one_message_queued_says_one_message() -> None:
    """A publish-only engine stopping with one message left: "1 message still queued"."""
    cfg = EngineConfig(consumers=0, min_consumers=0, seed=1)
    async with Engine(cfg, handler=None, clock=FakeClock()) as engine:
        await engine.publish({"x": 1})
    messages = [e.message for e in engine.events]
    assert any("engine stopped; 1 message still queued" in m for m in messages), messages


async def test_a_stall_that_kept_one_lease_says_one_lease() -> None:
    """A handler blocking the loop past one other delivery's lease: "kept 1 lease"."""
    clock = FakeClock()

    async def handler(d: Delivery) -> None:
        if d.body["block"]:
            clock.block(3.0)
        else:
            await clock.sleep(5.0)  # still held when the loop comes back

    cfg = EngineConfig(
        consumers=2, visibility_timeout=2.0, heartbeat_interval=0.5, heartbeat_timeout=1.5, seed=3
    )
    async with Engine(cfg, handler=handler, clock=clock) as engine:
        await engine.publish({"block": False})
        await engine.publish({"block": True})
        await clock.run_until(lambda: engine.snapshot().acked == 2, step=0.1, limit=60)
        kept = engine.snapshot().stalls[0].leases_kept
        messages = [e.message for e in engine.events if e.kind == "loop-stalled"]
    assert kept == 1
    assert "kept 1 lease that ran out meanwhile" in messages[0], messages


async def test_the_dashboard_killing_a_consumer_holding_one_message_says_one_lease() -> None:
    """k on a consumer holding one message: "1 lease went back to the queue"."""
    from support.dashboard import advance, log_text, make_app, quit_app, running

    app = make_app(consumers=1, latency=100.0)
    async with running(app) as pilot:
        await app.workload.publish({"order": 1})
        await advance(app, pilot, 0.5)
        await pilot.press("k")
        await pilot.pause()
        assert "killed c1; 1 lease went back to the queue" in log_text(app)
        await quit_app(app, pilot)


async def test_a_worker_killing_a_consumer_holding_one_message_says_one_lease() -> None:
    """A fleet worker's kill command on a consumer holding one message: "1 lease released"."""
    from ccdash.fleet.runtime import WorkerOptions, WorkerRuntime

    clock = FakeClock()
    started = False

    async def slow(d: Delivery) -> None:
        nonlocal started
        started = True
        await clock.sleep(100)

    # The runtime's own engine is on Redis (never opened here); its commands act on
    # whichever engine it holds, so it is given one on the memory broker.
    runtime = WorkerRuntime(WorkerOptions("redis://127.0.0.1:1/0", handler=slow, name="w1"))
    cfg = EngineConfig(consumers=1, heartbeat_interval=0.5, seed=1, shutdown_grace=0)
    async with Engine(cfg, handler=slow, clock=clock) as engine:
        runtime.engine = engine
        await engine.publish({"x": 1})
        await clock.run_until(lambda: started, limit=30)
        cid = engine.snapshot().consumers[0].id
        said = await runtime.execute({"action": "kill", "args": {"consumer": cid}})
    assert said == f"killed {cid}; 1 lease released"
