"""What only the Redis broker has, on a real redis-server: real-time variants of
the contract's fake-clock tests (expiry, backoff, extend, dedup window), several
workers on one queue, fleet failover, lost state, errors.

The contract tests themselves run on Redis too: tests/test_broker_contract.py.
Real time, short timeouts: every wait is bounded by `asyncio.timeout`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from support.polling import until
from support.redis_fixtures import lease

from ccdash import Engine, EngineConfig
from ccdash.brokers.base import REASON_EXPIRED, BrokerClosed, Delivery, QueueFull, ReceiptRejected
from ccdash.brokers.redis import RedisBroker
from ccdash.fleet.settle import locate

Make = Callable[..., Any]


async def settled(broker: RedisBroker) -> None:
    """Flush this process's writes and read fresh fleet counts."""
    await broker.flush()
    await broker.refresh()


# -- leasing ----------------------------------------------------------------


async def test_receive_leases_for_one_visibility_timeout(redis_broker: Make) -> None:
    """A delivery names its holder, attempt 1, and a deadline one visibility timeout on."""
    broker = await redis_broker(visibility_timeout=7.0)
    mid = await broker.publish(b"x")
    before = broker.clock.now()
    d = await lease(broker, "alice")
    assert (d.message_id, d.consumer_id, d.attempt, d.body) == (mid, "alice", 1, b"x")
    assert before + 6.0 < d.deadline <= broker.clock.now() + 7.0
    await settled(broker)
    assert broker.stats().in_flight == 1


# -- acks -------------------------------------------------------------------


async def test_group_committed_ack_counts_at_once_and_reaches_redis(redis_broker: Make) -> None:
    """ack_nowait is counted locally at once and confirmed by Redis in the next batch."""
    broker = await redis_broker()
    await broker.publish(b"x")
    d = await lease(broker)
    broker.ack_nowait(d.receipt)
    assert broker.outstanding() == 0
    await settled(broker)
    assert (broker.stats().acked, broker.flusher.late_rejected) == (1, 0)


async def test_expired_lease_goes_back_and_the_old_receipt_is_rejected(redis_broker: Make) -> None:
    """Past the visibility timeout the message is delivered again (XAUTOCLAIM) with
    reason lease-expired, and the first holder's ack is refused."""
    broker = await redis_broker(visibility_timeout=0.8, ttl=0.3)
    await broker.publish(b"x")
    first = await lease(broker, "slow")
    again = await lease(broker, "fast", within=5.0)
    assert (again.message_id, again.attempt) == (first.message_id, 2)
    with pytest.raises(ReceiptRejected):
        await broker.ack(first.receipt)
    await broker.ack(again.receipt)


async def test_stale_receipt_is_refused_by_redis(redis_broker: Make) -> None:
    """A lease taken over by another worker is refused by the check-and-ack script
    even when this process still thinks it holds it."""
    a = await redis_broker(worker="wa", visibility_timeout=0.8, ttl=0.3)
    b = await redis_broker(worker="wb", visibility_timeout=0.8, ttl=0.3)
    await a.publish(b"x")
    mine = await lease(a, "c")
    mine_entry = a.book.leases[mine.receipt]
    taken = await lease(b, "d", within=5.0)  # a's lease expired: b got it
    assert taken.message_id == mine.message_id
    mine_entry.deadline = a.clock.now() + 60  # a's local view is stale
    with pytest.raises(ReceiptRejected):
        await a.ack(mine.receipt)
    await b.ack(taken.receipt)


# -- nack, retries, DLQ -----------------------------------------------------


def redis_ms(server: Any) -> int:
    """Redis's own clock (TIME), in ms: what a retry's due time is judged by."""
    parts = server.command("TIME").split(b"\r\n")
    return int(parts[2]) * 1000 + int(parts[4]) // 1000


async def test_nack_hides_the_message_for_its_delay(redis_broker: Make, redis_server: Any) -> None:
    """A nacked message waits out its delay in the delayed set, due exactly its delay
    after the nack on Redis's clock (which judges it), and is not handed out before;
    once Redis's clock reaches the due time (the test moves it there, as a fake clock
    would), it comes back, attempt 2. (Timed on the local clock against Redis's, the
    0.6 s delay flaked.)"""
    broker = await redis_broker()
    await broker.publish(b"x")
    d = await lease(broker)
    delayed = f"{broker.keys.prefix}delayed"
    before = redis_ms(redis_server)
    assert await broker.nack(d.receipt, "boom", delay=600.0) is False
    after = redis_ms(redis_server)
    due = float(redis_server.command("ZSCORE", delayed, d.message_id).split(b"\r\n")[1])
    assert before + 600_000 <= due <= after + 600_000
    await settled(broker)
    assert (broker.stats().delayed, broker.stats().ready) == (1, 0)
    assert broker.receive_nowait(["c"]) == []
    now = redis_ms(redis_server)  # the delay is over on Redis's clock
    assert redis_server.command("ZADD", delayed, "XX", str(now), d.message_id) == b":0\r\n"
    again = await lease(broker)
    assert (again.message_id, again.attempt) == (d.message_id, 2)


async def test_delayed_retries_come_due_in_deadline_order(redis_broker: Make) -> None:
    """Retries come back in the order their delays end. Once both are due they come
    back in their place order (late was published first), so the gap between the
    delays is wide: on a loaded machine the next read can come 0.4 s late."""
    broker = await redis_broker()
    await broker.publish("late")
    await broker.publish("soon")
    late = await lease(broker)
    soon = await lease(broker)
    await broker.nack(late.receipt, delay=2.0)
    await broker.nack(soon.receipt, delay=0.2)
    assert [(await lease(broker)).body for _ in range(2)] == ["soon", "late"]


async def test_expiry_at_max_attempts_dead_letters_as_lease_expired(redis_broker: Make) -> None:
    """A lease that runs out on the last attempt goes to the DLQ as lease-expired."""
    other = await redis_broker(worker="reaper", visibility_timeout=0.6, ttl=0.3, max_attempts=1)
    broker = await redis_broker(worker="holder", visibility_timeout=0.6, ttl=0.3, max_attempts=1)
    await broker.publish(b"x")
    await lease(broker)
    await until(other.dead_letters, 5, "the expired message dead-lettered")
    assert other.dead_letters()[0].reason == REASON_EXPIRED


async def test_defer_gives_the_attempt_back(redis_broker: Make) -> None:
    """A deferred message comes back after its delay with the same attempt."""
    broker = await redis_broker()
    await broker.publish(b"x")
    d = await lease(broker)
    await broker.defer(d.receipt, 0.2)
    assert (await lease(broker)).attempt == 1


# -- extend -----------------------------------------------------------------


async def test_extended_lease_outlives_its_first_deadline(redis_broker: Make) -> None:
    """Extending (XCLAIM of our own entry) keeps the lease past the first deadline.
    Each extension comes 1.5 s before the lease would run out: a loaded machine can
    run this task half a second late."""
    other = await redis_broker(worker="other", visibility_timeout=2.0, ttl=0.3)
    broker = await redis_broker(worker="me", visibility_timeout=2.0, ttl=0.3)
    await broker.publish(b"x")
    d = await lease(broker)
    for _ in range(5):
        await asyncio.sleep(0.5)
        new = await broker.extend(d.receipt, 2.0)
        assert new > d.deadline
        d.deadline = new
    assert other.ready_count() == 0
    await broker.ack(d.receipt)


async def test_expired_lease_cannot_be_extended(redis_broker: Make) -> None:
    """Past its deadline a lease can be neither extended nor nacked."""
    broker = await redis_broker(visibility_timeout=0.5, ttl=0.3)
    await broker.publish(b"x")
    d = await lease(broker)
    await asyncio.sleep(0.6)
    with pytest.raises(ReceiptRejected):
        await broker.extend(d.receipt, 1.0)
    with pytest.raises(ReceiptRejected):
        await broker.nack(d.receipt)


# -- priority, redrive, purge, dedup ---------------------------------------


async def test_retried_message_keeps_its_priority(redis_broker: Make) -> None:
    """A nacked high-priority message goes back to its own level, ahead of every
    lower-priority message still in Redis (a worker's read-ahead buffer aside)."""
    a = await redis_broker(worker="a", fetch=1)
    await a.publish("high", priority=9)
    d = await lease(a)
    for i in range(3):
        await a.publish(f"low{i}", priority=0)
    await a.nack(d.receipt, delay=0)
    b = await redis_broker(worker="b", fetch=1)
    assert (await lease(b)).body == "high"


async def test_queue_latency_is_the_oldest_ready_publish_fleet_wide(redis_broker: Make) -> None:
    """The stats read says when the oldest ready message was published (Redis stamps
    it): across priorities, not counting what a worker read; a returned message keeps
    its first publish time; none once everything is leased. A time mapped from Redis'
    clock is early by at most the stats read's own trip, and the publish happened
    between t0 and t1: the bounds say that, whatever the load (fixed slack was beaten
    by a loaded machine)."""
    pub = await redis_broker(worker="pub", fetch=1)
    await settled(pub)
    assert pub.oldest_ready_published_at() is None
    t0 = time.monotonic()
    await pub.publish("old", priority=0)
    t1 = time.monotonic()
    await asyncio.sleep(0.3)  # the age is measured on Redis's clock: let it move
    await pub.publish("new", priority=9)

    async def published_at() -> float | None:
        before = time.monotonic()
        await settled(pub)
        at: float | None = pub.oldest_ready_published_at()
        trip = time.monotonic() - before
        # Redis stamps whole milliseconds on its clock, mapped to ours: 2 ms either side.
        assert at is None or t0 - trip - 0.002 <= at <= t1 + 0.002, (at, t0, t1, trip)
        return at

    first = await published_at()
    assert first is not None  # "old", published before t1: "new" came 0.3 s after it
    con = await redis_broker(worker="con", fetch=1)
    high = await lease(con)
    low = await lease(con)
    assert (high.body, low.body) == ("new", "old")
    assert await published_at() is None
    await con.nack(low.receipt, delay=0)  # back, in its original place
    await con.flush()
    assert await published_at() is not None  # by t1: not when it came back, 0.3 s later


async def _dead(broker: RedisBroker, *bodies: str) -> list[str]:
    ids = []
    for body in bodies:
        ids.append(await broker.publish(body))
        d = await lease(broker)
        await broker.nack(d.receipt, "bad", delay=0)
    await settled(broker)
    return ids


async def test_redrive_and_purge_by_id(redis_broker: Make) -> None:
    """redrive(ids) and purge(ids) touch only those messages; newest dead first."""
    broker = await redis_broker(max_attempts=1)
    a, b, c = await _dead(broker, "a", "b", "c")
    assert [d.message_id for d in broker.dead_letters()] == [c, b, a]
    assert await broker.redrive([b, "nope"]) == 1
    assert (await lease(broker)).message_id == b
    assert await broker.purge([a]) == 1
    assert [d.message_id for d in broker.dead_letters()] == [c]
    assert await broker.purge() == 1
    assert broker.stats().dead == 0


async def test_duplicate_within_window_is_a_no_op_across_processes(redis_broker: Make) -> None:
    """A dedup id seen by any publisher returns the first message's id."""
    one = await redis_broker(worker="p1")
    two = await redis_broker(worker="p2")
    first = await one.publish(b"x", dedup_id="order-1")
    assert await two.publish(b"y", dedup_id="order-1") == first
    await settled(two)
    assert two.stats().published == 1


async def test_same_dedup_id_after_window_is_a_new_message(redis_broker: Make) -> None:
    """After the dedup window the same id publishes a new message."""
    broker = await redis_broker(dedup_window=0.2)
    first = await broker.publish(b"x", dedup_id="k")
    await asyncio.sleep(0.3)
    assert await broker.publish(b"x", dedup_id="k") != first


async def test_publish_nowait_with_dedup_asks_redis(redis_broker: Make) -> None:
    """publish_nowait cannot answer a dedup question alone: QueueFull-like WouldBlock."""
    broker = await redis_broker()
    with pytest.raises(QueueFull):
        broker.publish_nowait(b"x", dedup_id="k")


# -- capacity, bodies, waiting, closing ------------------------------------


async def test_bounded_queue_refuses_publish_nowait_when_full(redis_broker: Make) -> None:
    """A full bounded queue raises QueueFull instead of dropping."""
    broker = await redis_broker(capacity=2)
    broker.publish_nowait(1)
    broker.publish_nowait(2)
    with pytest.raises(QueueFull):
        broker.publish_nowait(3)


async def test_a_publisher_waiting_for_room_asks_for_a_count_now_and_then(
    redis_broker: Make,
) -> None:
    """A publisher parked on a full queue is woken by every stats read, but asks for a
    new one only every 0.25 s: not one round trip after another while it waits."""
    broker = await redis_broker(capacity=1)
    await broker.publish(b"a")
    reads = 0
    cycle = broker.flusher.cycle

    async def counted() -> None:
        nonlocal reads
        reads += 1
        await cycle()

    broker.flusher.cycle = counted
    waiting = asyncio.create_task(broker.publish(b"b"))
    await asyncio.sleep(1.0)  # a window to count round trips in, not a timing target
    assert not waiting.done()
    assert reads < 40  # about 4 asked for, and the heartbeats' (thousands when busy)
    d = await lease(broker)
    await broker.ack(d.receipt)
    async with asyncio.timeout(5):
        await waiting


async def test_wait_ready_is_woken_by_another_process_publishing(redis_broker: Make) -> None:
    """A parked reader (XREADGROUP BLOCK) wakes for a publish from elsewhere."""
    consumer = await redis_broker(worker="consumer")
    producer = await redis_broker(worker="producer")
    waiter = asyncio.create_task(consumer.wait_ready())
    await asyncio.sleep(0.3)
    assert not waiter.done()
    t0 = time.monotonic()
    await producer.publish(b"x")
    async with asyncio.timeout(2):
        await waiter
    assert time.monotonic() - t0 < 1.0


async def test_competing_brokers_each_get_distinct_messages(redis_broker: Make) -> None:
    """Two workers share the queue: every message is delivered once."""
    a = await redis_broker(worker="a", fetch=8)
    b = await redis_broker(worker="b", fetch=8)
    for i in range(60):
        a.publish_nowait(i)
    await a.flush()
    seen: list[int] = []

    async def drain(broker: RedisBroker) -> None:
        while len(seen) < 60:
            try:
                async with asyncio.timeout(0.5):
                    await broker.wait_ready()
            except TimeoutError:
                continue
            for d in await broker.receive(["x"] * 4):
                seen.append(d.body)
                await broker.ack(d.receipt)

    async with asyncio.timeout(10):
        await asyncio.gather(drain(a), drain(b))
    assert sorted(seen) == list(range(60))


async def test_closed_broker_refuses_calls_and_hands_back_its_buffer(redis_broker: Make) -> None:
    """Closing gives buffered entries back (attempt unused) for the others."""
    a = await redis_broker(worker="leaver")
    await a.publish(b"x")
    await a.wait_ready()
    await a.close()
    with pytest.raises(BrokerClosed):
        a.publish_nowait(b"y")
    b = await redis_broker(worker="stayer")
    assert (await lease(b)).attempt == 1


# -- fleet-level failover, lost state, errors ------------------------------


async def test_dead_workers_leases_are_claimed_once_its_heartbeat_expires(
    redis_broker: Make,
) -> None:
    """A worker that stops heartbeating loses its leases to the others well before
    the visibility timeout, counted as consumer-failed."""
    victim = await redis_broker(worker="victim", ttl=0.4, visibility_timeout=30.0)
    survivor = await redis_broker(worker="survivor", ttl=0.4, visibility_timeout=30.0)
    mid = await victim.publish(b"x")
    await lease(victim)
    victim._tasks[1].cancel()  # its heartbeat task stops (as if SIGKILLed)
    t0 = time.monotonic()
    d = await lease(survivor, within=5.0)
    assert (d.message_id, d.attempt) == (mid, 2)
    assert time.monotonic() - t0 < 3.0


async def test_a_restarted_worker_returns_what_its_previous_process_held(
    redis_broker: Make,
) -> None:
    """A worker back under the same name finds entries its dead predecessor held and
    puts them back as consumer-failed (nobody else would: its name is alive again)."""
    first = await redis_broker(worker="same", ttl=0.4)
    mid = await first.publish(b"x")
    await lease(first)
    first._tasks[1].cancel()  # its heartbeat stops: the process died
    await asyncio.sleep(0.5)  # the TTL runs out before any peer looked
    first.book.drain_buffer()
    first.book.leases.clear()  # what the dead process knew is gone with it
    first.presence.registered = False
    again = await redis_broker(worker="same", ttl=0.4)
    d = await lease(again)
    assert (d.message_id, d.attempt) == (mid, 2)


async def test_lost_redis_state_is_reported_and_the_group_recreated(
    redis_broker: Make, redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """NOGROUP after Redis lost its data: reported once, the group re-created, work goes on."""
    broker = await redis_broker()
    await broker.publish(b"before")
    d = await lease(broker)
    for key in [broker.keys.stream(0), broker.keys.priorities]:
        redis_server.command("DEL", key)
    with pytest.raises(ReceiptRejected):
        await broker.ack(d.receipt)
    assert broker.lost_state_events == 1
    assert "lost the queue's consumer group" in caplog.text
    await broker.publish(b"after")
    assert (await lease(broker)).body == b"after"


async def test_unreachable_redis_is_a_clear_error_without_the_password() -> None:
    """open() names the (redacted) URL and the problem; the password never shows."""
    from support.redis_fixtures import free_port

    from ccdash.brokers.base import BrokerError, QueueConfig

    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0?timeout=0.5"
    broker = RedisBroker.from_url(url, QueueConfig())
    with pytest.raises(BrokerError) as err:
        await broker.open()
    assert "cannot reach Redis" in str(err.value)
    assert "s3cret" not in str(err.value) and "***" in str(err.value)
    await broker.close()


# -- the engine on the Redis broker -----------------------------------------


async def test_engine_runs_on_the_redis_broker(redis_url: str) -> None:
    """Engine(broker=URL): publish (with dedup), handle, kill a consumer mid-run
    (its leases go back at once), join; every message acked exactly as published."""

    seen: list[str] = []
    some_done = asyncio.Event()

    async def handler(d: Delivery) -> None:
        await asyncio.sleep(0.002)
        seen.append(d.message_id)
        if len(seen) >= 50:
            some_done.set()

    cfg = EngineConfig(consumers=4, prefetch=4, visibility_timeout=10.0, seed=3)
    async with Engine(cfg, handler=handler, broker=redis_url + "&ttl=0.6") as engine:
        first = await engine.publish({"n": -1}, dedup_id="once")
        assert await engine.publish({"n": -2}, dedup_id="once") == first
        ids = {first} | {await engine.publish({"n": i}) for i in range(300)}
        async with asyncio.timeout(10):
            await some_done.wait()
        await engine.kill_consumer("c1")
        await engine.join(timeout=20)
        snap = engine.snapshot()
    assert set(seen) == ids
    assert snap.published == snap.acked == 301
    assert snap.failovers == 1


async def test_redelivered_counts_a_retry_when_it_is_scheduled(redis_broker: Make) -> None:
    """Documented deviation: the fleet counter `redelivered` goes up when a failed
    delivery is put back for another attempt, not when that attempt is delivered."""
    broker = await redis_broker(max_attempts=5)
    await broker.publish(b"x")
    d = await lease(broker)
    await broker.nack(d.receipt, delay=30)
    await settled(broker)
    assert (broker.stats().redelivered, broker.stats().delayed) == (1, 1)


async def test_engine_publish_returns_only_once_redis_has_the_message(
    redis_server_factory: Any,
) -> None:
    """An engine on Redis accepts a message only once Redis stores it: while Redis is
    down `engine.publish` waits (a crash then could not lose an accepted message), and
    once Redis is back it returns, with the message in Redis."""
    server = redis_server_factory()
    url = f"{server.url}?queue=accept"
    async with Engine(EngineConfig(consumers=0, min_consumers=0), broker=url) as engine:
        first = await engine.publish(b"first")
        server.stop(kill=True)
        pending = asyncio.ensure_future(engine.publish(b"second"))
        done, _ = await asyncio.wait([pending], timeout=0.5)
        assert not done, "publish returned while Redis could not have stored the message"
        server.start()  # append-only with fsync always: the first message survived
        second = await asyncio.wait_for(pending, 20)
        where = await locate(url, [first, second])
    assert where.outstanding == {first, second}


async def test_flush_waits_for_what_was_queued_not_for_an_idle_queue(
    redis_broker: Make, redis_url: str
) -> None:
    """`flush` returns once the publishes queued before it are in Redis, even while a
    producer keeps queueing more (the write queue then never empties)."""
    broker = await redis_broker()
    before = [broker.publish_nowait(b"early") for _ in range(50)]
    keep_going = True

    async def producer() -> None:
        while keep_going:
            broker.publish_nowait(b"later")
            await asyncio.sleep(0)

    task = asyncio.ensure_future(producer())
    try:
        await asyncio.wait_for(broker.flush(), 10)
        assert not task.done()  # still queueing while flush returned
    finally:
        keep_going = False
        await task
    where = await locate(redis_url, before)
    assert where.outstanding == set(before)
