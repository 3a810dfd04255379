"""Queue latency: the age of the oldest ready message, in the snapshot, the alert rules,
/metrics and the queue pane (fake clock throughout)."""

from __future__ import annotations

import pytest
from support.dashboard import advance, make_app, quit_app, running, screen_text

from ccdash.brokers.memory import MemoryBroker
from ccdash.clock import FakeClock
from ccdash.engine.rules import AlertRule, RuleEvaluator


async def test_the_oldest_ready_message_across_priorities() -> None:
    """The earliest publish time among ready messages, whatever their priority; a
    message taken by a consumer no longer counts; an empty queue has none."""
    clock = FakeClock()
    broker = MemoryBroker(clock=clock)
    assert broker.oldest_ready_published_at() is None
    first = clock.now()
    await broker.publish({"n": 1}, priority=0)
    await clock.advance(1.0)
    await broker.publish({"n": 2}, priority=9)
    await clock.advance(1.0)
    assert broker.oldest_ready_published_at() == first
    [d] = await broker.receive(["c1"])  # priority 9 first: the newer one
    assert d.body == {"n": 2}
    assert broker.oldest_ready_published_at() == first
    await broker.receive(["c1"])
    assert broker.oldest_ready_published_at() is None


async def test_snapshot_rules_and_screen_show_the_queue_latency() -> None:
    """Paused consumption: the snapshot's oldest_ready_age grows with the clock, a
    queue_latency rule fires, and the queue pane shows it."""
    app = make_app()
    async with running(app, (120, 40)) as pilot:
        await pilot.press("z")  # pause: messages wait
        await app.engine.publish({"order": 1})
        await advance(app, pilot, 3.0, step=0.5)
        snap = app.engine.snapshot()
        assert snap.queue.oldest_ready_age == pytest.approx(3.0, abs=0.3)
        rule = AlertRule("queue-latency", "queue_latency", ">", 2.0)
        assert RuleEvaluator(app.engine, (rule,)).metric("queue_latency") == pytest.approx(
            snap.queue.oldest_ready_age, abs=0.01
        )
        assert "oldest 3.0" in screen_text(app) or "oldest 2.9" in screen_text(app)
        await pilot.press("z")
        await advance(app, pilot, 1.0)
        assert app.engine.snapshot().queue.oldest_ready_age is None
        assert "oldest –" in screen_text(app)
        await quit_app(app, pilot)


async def test_locate_finds_a_message_wherever_it_is() -> None:
    """The memory broker says where a message is: ready, leased (by whom), delayed after a
    failure (with that failure in its history), dead; None once acked."""
    from ccdash.brokers.base import QueueConfig

    clock = FakeClock()
    broker = MemoryBroker(
        QueueConfig(max_attempts=2, backoff_base=1.0, backoff_max=1.0), clock=clock
    )
    mid = await broker.publish({"n": 1})
    assert broker.locate(mid).state == "ready"  # type: ignore[union-attr]
    [d] = await broker.receive(["c1"])
    where = broker.locate(mid)
    assert where is not None and (where.state, where.holder, where.attempt) == ("leased", "c1", 1)
    await broker.nack(d.receipt, "boom", delay=1.0)
    where = broker.locate(mid)
    assert where is not None and where.state == "delayed"
    assert [(h.consumer_id, h.error) for h in where.history] == [("c1", "boom")]
    await clock.advance(1.5)
    [d] = await broker.receive(["c2"])
    await broker.nack(d.receipt, "boom again")
    assert broker.locate(mid).state == "dead"  # type: ignore[union-attr]
    await broker.redrive([mid])
    [d] = await broker.receive(["c3"])
    await broker.ack(d.receipt)
    assert broker.locate(mid) is None
    assert broker.locate("nope") is None


async def test_sqlite_knows_its_queue_latency_too(tmp_path: object) -> None:
    """On a real SQLite file: the oldest ready message across priorities, on the broker's
    clock; none once they are taken."""
    from pathlib import Path

    from ccdash.brokers.sqlite import SqliteBroker

    clock = FakeClock()
    broker = SqliteBroker(str(Path(str(tmp_path)) / "q.db"), clock=clock)
    await broker.open()
    try:
        assert broker.oldest_ready_published_at() is None
        first = clock.now()
        await broker.publish({"n": 1}, priority=0)
        await clock.advance(2.0)
        await broker.publish({"n": 2}, priority=9)
        await broker.flush()
        assert broker.oldest_ready_published_at() == pytest.approx(first, abs=0.05)
        await broker.receive(["c1"])
        await broker.receive(["c1"])
        await broker.flush()
        assert broker.oldest_ready_published_at() is None
    finally:
        await broker.close()
