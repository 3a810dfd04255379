"""The SQLite broker when a store write fails: a passing failure (another process
holds the write lock past the busy timeout, SQLITE_BUSY or SQLITE_PROTOCOL inside a
batch) is retried with backoff behind a warning, and nothing stops; one that lasts
past the patience, or a permanent one, fails the write with one line."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from support.polling import until
from support.settling_clock import SettlingClock

from ccdash import Engine, EngineConfig
from ccdash.brokers.base import BrokerError, Delivery, QueueConfig
from ccdash.brokers.sqlite import SqliteBroker
from ccdash.brokers.sqlite.store import Store
from ccdash.clock import FakeClock
from ccdash.engine.states import AlertState

Events = list[tuple[str, dict[str, Any]]]


def fail_first(
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    code: int = sqlite3.SQLITE_BUSY,
    text: str = "database is locked",
) -> list[int]:
    """Store.`method` raises a SQLite error with this code on its first call only;
    returns the call count."""
    real = getattr(Store, method)
    calls = [0]

    def flaky(self: Store, *args: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            exc = sqlite3.OperationalError(text)
            exc.sqlite_errorcode = code
            raise exc
        return real(self, *args)

    monkeypatch.setattr(Store, method, flaky)
    return calls


async def opened(path: Path, events: Events) -> SqliteBroker:
    """A broker on a fake clock whose events go to `events`."""
    broker = SqliteBroker(str(path), QueueConfig(visibility_timeout=30, seed=1), clock=FakeClock())
    broker.on_event = lambda kind, fields: events.append((kind, fields))
    await broker.open()
    return broker


def lock(path: Path) -> sqlite3.Connection:
    """Another connection (as another process would) holding the file's write lock."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


async def test_writes_held_up_by_a_lock_past_the_busy_timeout_all_go_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publish, an ack, a nack and an extend wait behind another connection's write
    lock, held past the busy timeout: a warning event names the lock; once it is
    released each goes through once, and nothing accepted is lost."""
    monkeypatch.setattr("ccdash.brokers.sqlite.schema.BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "q.db"
    events: Events = []
    broker = await opened(path, events)
    for n in range(3):
        await broker.publish({"n": n})
    a, b, c = await broker.receive(["c1", "c2", "c3"])
    other = lock(path)
    try:
        waiting = [
            asyncio.ensure_future(broker.publish({"n": 3})),
            asyncio.ensure_future(broker.ack(a.receipt)),
            asyncio.ensure_future(broker.nack(b.receipt, "boom")),
            asyncio.ensure_future(broker.extend(c.receipt, 60.0)),
        ]
        await until(lambda: events, 10, "a warning that writes wait for the lock")
        assert not any(w.done() for w in waiting)
    finally:
        other.execute("ROLLBACK")
        other.close()
    async with asyncio.timeout(10):
        mid, _, dead, deadline = await asyncio.gather(*waiting)
    assert [kind for kind, _ in events] == ["store-busy", "store-recovered"]
    assert "database is locked" in events[0][1]["cause"]
    assert dead is False and deadline == broker.clock.now() + 60.0
    stats = broker.stats()
    assert (stats.published, stats.acked, stats.ready, stats.delayed, stats.in_flight) == (
        4,
        1,
        1,
        1,
        1,
    )
    assert [d.message_id for d in await broker.receive(["c4", "c5"])] == [mid]
    await broker.close()


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (sqlite3.SQLITE_BUSY, "database is locked"),
        (sqlite3.SQLITE_LOCKED, "database table is locked"),
        (sqlite3.SQLITE_PROTOCOL, "locking protocol"),
    ],
)
async def test_a_passing_failure_inside_a_batch_is_retried(
    code: int, text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ack whose batch fails with a lock error or the WAL lock-protocol race is
    rolled back and run again: acked once, with a warning and its all-clear."""
    calls = fail_first(monkeypatch, "ack", code, text)
    events: Events = []
    broker = await opened(tmp_path / "q.db", events)
    await broker.publish(b"x")
    [d] = await broker.receive(["c1"])
    async with asyncio.timeout(10):
        await broker.ack(d.receipt)
    assert calls[0] == 2
    assert [kind for kind, _ in events] == ["store-busy", "store-recovered"]
    assert text in events[0][1]["cause"]
    stats = broker.stats()
    assert (stats.acked, stats.in_flight, stats.ready) == (1, 0, 0)
    await broker.close()


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (sqlite3.SQLITE_FULL, "database or disk is full"),
        (sqlite3.SQLITE_IOERR, "disk I/O error"),
        (sqlite3.SQLITE_READONLY, "attempt to write a readonly database"),
        (sqlite3.SQLITE_CORRUPT, "database disk image is malformed"),
    ],
)
async def test_a_permanent_failure_fails_the_publish_at_once(
    code: int, text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publish whose batch fails for good (disk full, I/O, read-only, corrupt) raises
    a BrokerError of one line naming the failure, is never retried, never counted."""
    calls = fail_first(monkeypatch, "publish", code, text)
    events: Events = []
    broker = await opened(tmp_path / "q.db", events)
    with pytest.raises(BrokerError) as failed:
        await broker.publish(b"x")
    assert calls[0] == 1 and not events
    message = str(failed.value)
    assert "write failed" in message and text in message and "\n" not in message
    assert broker.stats().published == 0
    await broker.close()


async def test_a_lock_held_past_the_patience_fails_the_write_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write lock held longer than the writer's patience: the publish waiting for it
    raises a one-line BrokerError saying so (not accepted, not stored); once the lock
    is gone the broker writes again."""
    monkeypatch.setattr("ccdash.brokers.sqlite.schema.BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr("ccdash.brokers.sqlite.schema.LOCK_PATIENCE", 0.5)
    path = tmp_path / "q.db"
    events: Events = []
    broker = await opened(path, events)
    other = lock(path)
    try:
        with pytest.raises(BrokerError) as failed:
            async with asyncio.timeout(10):
                await broker.publish(b"lost?")
    finally:
        other.execute("ROLLBACK")
        other.close()
    message = str(failed.value)
    assert "write failed" in message and "locked" in message and "\n" not in message
    assert [kind for kind, _ in events] == ["store-busy"]
    assert broker.stats().published == 0
    await broker.publish(b"after")
    assert [d.body for d in await broker.receive(["c1", "c2"])] == [b"after"]
    await broker.close()


async def test_an_engine_rides_out_a_lock_held_past_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Consumers ack and a publisher publishes while another connection holds the
    write lock past the busy timeout: an alert fires and resolves once the lock is
    released, no consumer fails, every message is handled once and acked."""
    monkeypatch.setattr("ccdash.brokers.sqlite.schema.BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "q.db"
    gate = asyncio.Event()
    handled: list[str] = []

    async def handler(d: Delivery) -> None:
        await gate.wait()
        handled.append(d.message_id)

    cfg = EngineConfig(consumers=2, visibility_timeout=30.0, heartbeat_timeout=10.0, seed=1)
    async with Engine(cfg, handler=handler, broker=f"sqlite:///{path}") as engine:
        ids = [await engine.publish({"n": n}) for n in range(4)]
        await until(lambda: engine.snapshot().queue.in_flight >= 2, 10, "handlers under way")
        other = lock(path)
        try:
            gate.set()  # their acks now wait for the lock
            publishing = asyncio.ensure_future(
                asyncio.gather(*[engine.publish({"n": n}) for n in range(4, 8)])
            )
            await until(
                lambda: any(e.kind == "store-busy" for e in engine.events),
                10,
                "the store-busy warning",
            )
            [alert] = [a for a in engine.snapshot().alerts if a.name == "store-busy"]
            assert alert.state == AlertState.FIRING
        finally:
            other.execute("ROLLBACK")
            other.close()
        ids += await asyncio.wait_for(publishing, 10)
        await engine.join(timeout=10)
        snap = engine.snapshot()
    assert sorted(handled) == sorted(ids)
    assert (snap.acked, snap.queue.dead, snap.failovers) == (8, 0, 0)
    assert {a.state for a in snap.alerts if a.name == "store-busy"} == {AlertState.RESOLVED}
    assert any(e.kind == "store-recovered" for e in engine.events)


async def test_an_ack_and_an_extension_failing_transiently_stop_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first ack and the first lease extension fail with SQLITE_BUSY inside their
    batches: both are retried, the consumers and the engine go on, every message is
    handled once and acked."""
    acks = fail_first(monkeypatch, "ack")
    extends = fail_first(monkeypatch, "extend")
    clock = SettlingClock()
    handled: list[str] = []

    async def handler(d: Delivery) -> None:
        await clock.sleep(1.5)  # past half the visibility timeout: the lease is extended
        handled.append(d.message_id)

    cfg = EngineConfig(
        consumers=2, visibility_timeout=2.0, heartbeat_interval=0.25, heartbeat_timeout=1.0
    )
    engine = Engine(cfg, handler=handler, broker=f"sqlite:///{tmp_path / 'q.db'}", clock=clock)
    assert isinstance(engine.broker, SqliteBroker)
    clock.watch(engine.broker)
    async with asyncio.timeout(60), engine:
        ids = [await engine.publish({"n": n}) for n in range(4)]
        await clock.run_until(lambda: engine.snapshot().acked == 4, step=0.05, limit=60)
        snap = engine.snapshot()
    assert acks[0] > 1 and extends[0] > 1, "both failures were injected"
    assert sorted(handled) == sorted(ids)
    assert (snap.queue.dead, snap.redelivered, snap.failovers) == (0, 0, 0)
    assert [c.state for c in snap.consumers if c.state == "failed"] == []


async def test_a_retried_batch_reports_what_it_dead_lettered_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receive that buries an undecodable row, in a batch that then fails for a
    passing reason and is run again: the row is dead-lettered and reported once."""
    path = tmp_path / "q.db"
    events: Events = []
    broker = await opened(path, events)
    bad = await broker.publish({"n": 1})
    good = await broker.publish({"n": 2})
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE msgs SET body = ? WHERE mid = ?", (b"{not json", bad))
    calls = fail_first(monkeypatch, "end")  # the batch's last step, after the receive
    async with asyncio.timeout(10):
        got = await broker.receive(["c1", "c2"])
    assert calls[0] == 2 and [d.message_id for d in got] == [good]
    assert [kind for kind, _ in events].count("undecodable") == 1
    assert [d.message_id for d in broker.dead_letters()] == [bad]
    await broker.close()


async def test_publish_many_that_cannot_be_stored_raises_not_returns_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """publish_many whose group commit fails for good (disk full) raises a one-line
    BrokerError to the publisher; it never hands back ids of messages not stored."""
    fail_first(monkeypatch, "publish", sqlite3.SQLITE_FULL, "database or disk is full")
    broker = await opened(tmp_path / "q.db", [])
    with pytest.raises(BrokerError) as failed:
        async with asyncio.timeout(10):
            await broker.publish_many([{"n": 1}, {"n": 2}])
    message = str(failed.value)
    assert "write failed: database or disk is full" in message and "\n" not in message
    assert broker.stats().published == 0
    await broker.close()


async def test_a_publish_whose_checks_cannot_read_the_file_raises_a_broker_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publish whose room or dedup check fails to read the file (corrupt, I/O) raises
    a one-line BrokerError naming the file, as a failed write does, not sqlite3's own;
    the broker still closes."""
    malformed = sqlite3.DatabaseError("database disk image is malformed")

    def unreadable(*args: Any) -> Any:
        raise malformed

    broker = SqliteBroker(str(tmp_path / "q.db"), QueueConfig(capacity=1), clock=FakeClock())
    await broker.open()
    await broker.publish(b"fills it")
    monkeypatch.setattr("ccdash.brokers.sqlite.views.duplicate_of", unreadable)
    monkeypatch.setattr("ccdash.brokers.sqlite.link.Link.read_file", unreadable)
    with pytest.raises(BrokerError) as failed_publish:  # the room check (the queue is full)
        await broker.publish(b"x")
    with pytest.raises(BrokerError) as failed_nowait:  # the dedup check
        broker.publish_nowait(b"x", dedup_id="k")
    for failed in (failed_publish, failed_nowait):
        message = str(failed.value)
        assert "read failed: database disk image is malformed" in message, message
        assert str(tmp_path) in message and "\n" not in message
    async with asyncio.timeout(10):
        await broker.close()  # a file it cannot read still closes: the writer stops
    assert not broker._link.writer._thread.is_alive()


async def test_an_ack_the_store_cannot_write_stops_the_engine_not_the_consumer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ack whose batch fails for good (disk I/O error) with nothing else in it: the
    engine stops with that one-line BrokerError. It is the broker that failed, not the
    consumer: the old code took it for a consumer crash and replaced the consumer, whose
    ack failed the same way, until the restart limit (a demo then ran to its end and
    exited 1 with no error line: test_demo_broker_failure.py's flake under load)."""

    def broken(self: Store, *args: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Store, "ack", broken)
    clock = SettlingClock()

    async def handler(d: Delivery) -> None:
        return None

    cfg = EngineConfig(consumers=1, heartbeat_interval=0.25, heartbeat_timeout=1.0)
    engine = Engine(cfg, handler=handler, broker=f"sqlite:///{tmp_path / 'q.db'}", clock=clock)
    assert isinstance(engine.broker, SqliteBroker)
    clock.watch(engine.broker)
    with pytest.raises(BaseExceptionGroup) as failed:  # the engine's task group's
        async with asyncio.timeout(60), engine:
            await engine.publish({"n": 1})  # the one write before the ack
            await clock.run_until(lambda: engine.snapshot().failovers > 0, step=0.05, limit=30)
    [error] = failed.value.exceptions
    assert isinstance(error, BrokerError) and "write failed: disk I/O error" in str(error)
    assert engine.snapshot().failovers == 0
