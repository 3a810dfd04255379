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
